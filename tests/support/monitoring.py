"""The monitoring files of ugem/deploy as tests read them: the PromQL they query, and names.

`alert_exprs()` and `dashboard_exprs()` give the expressions of the Prometheus alert
rules and of the Grafana dashboards; `as_promql(expr)` puts plain values in place of
Grafana's variables so promtool can parse a dashboard's expression; `metric_names(exprs)`
the gateway's metric names (`ugem_...`) they query; `exposed_names(page)` the sample
names a Prometheus text page can show, even for a family with no sample yet.
`promtool()` is the path of promtool (Debian's prometheus package), or a missing peer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.support.peers import require

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "ugem" / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
_METRIC = re.compile(r"\bugem_[a-z0-9_]+\b")
_TYPE = re.compile(r"^# TYPE (\S+) (\w+)$", re.MULTILINE)
_SUFFIXES = {"histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$instance": ".*"}


def promtool() -> str:
    return require("promtool", "promtool is not installed (Debian's prometheus package)")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_exprs() -> list[str]:
    rules = load_yaml(PROMETHEUS / "alerts.yml")
    return [str(rule["expr"]) for group in rules["groups"] for rule in group["rules"]]


def dashboards() -> dict[str, Any]:
    """Each dashboard's JSON by file name."""
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((GRAFANA / "dashboards").glob("*.json"))
    }


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> list[str]:
    return [
        str(target["expr"])
        for dashboard in dashboards().values()
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def dashboard_variable_queries() -> list[str]:
    """The queries of the dashboards' variables (`label_values(metric, label)`)."""
    return [
        str(variable["definition"])
        for dashboard in dashboards().values()
        for variable in dashboard.get("templating", {}).get("list", [])
        if variable.get("type") == "query"
    ]


def as_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def metric_names(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in _METRIC.findall(expr)}


def exposed_names(page: str) -> set[str]:
    """The sample names of every family a Prometheus text page declares (# TYPE lines)."""
    names = set()
    for name, kind in _TYPE.findall(page):
        names.add(name)
        names.update(name + suffix for suffix in _SUFFIXES.get(kind, ()))
    return names
