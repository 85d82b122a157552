"""ugem/deploy/prometheus and the dashboards' queries, checked by promtool.

The Prometheus config and its alert rules pass `promtool check`; the rules pass their
own unit tests (alerts_test.yml: each alert fires on some series and not on others);
every rule says why its threshold; every dashboard query parses as PromQL.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.support.monitoring import (
    PROMETHEUS,
    as_promql,
    dashboard_exprs,
    load_yaml,
    promtool,
)

SEVERITIES = {"critical", "warning"}


def run(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def alerts() -> list[dict[str, object]]:
    rules = load_yaml(PROMETHEUS / "alerts.yml")
    return [rule for group in rules["groups"] for rule in group["rules"]]


def test_the_prometheus_config_and_its_rule_files_pass_promtool() -> None:
    done = run("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout


def test_the_alert_rules_pass_promtool() -> None:
    done = run("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in done.stdout


def test_the_alert_rules_pass_their_unit_tests() -> None:
    done = run("test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases = [
        case
        for test in load_yaml(PROMETHEUS / "alerts_test.yml")["tests"]
        for case in test["alert_rule_test"]
    ]
    for name in (str(rule["alert"]) for rule in alerts()):
        expected = [case["exp_alerts"] for case in cases if case["alertname"] == name]
        assert any(expected), f"{name}: no case where it fires"
        assert not all(expected), f"{name}: no case where it does not fire"


def test_every_alert_says_why_and_how_grave() -> None:
    lines = (PROMETHEUS / "alerts.yml").read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines):
        if line.strip().startswith("- alert:"):
            assert lines[n - 1].strip().startswith("#"), f"no comment above {line.strip()}"
    for rule in alerts():
        labels, notes = rule["labels"], rule["annotations"]
        assert isinstance(labels, dict) and labels["severity"] in SEVERITIES, rule["alert"]
        assert isinstance(notes, dict) and notes["summary"] and notes["description"]


def test_every_dashboard_query_parses_as_promql(tmp_path: Path) -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{n}", "expr": as_promql(e)}
                    for n, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    done = run("check", "rules", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not any(re.search(r"\$\w", as_promql(e)) for e in exprs), "a variable left over"
