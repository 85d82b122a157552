"""The comparison's set-up: a Postfix configuration Postfix accepts, a gateway config the
gateway loads, the settings given on the command line, and the side-by-side table.

The full comparison is not run here (minutes of load); see BENCHMARKS.md.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from loadtest.compare import (
    CompareOptions,
    Comparison,
    Measurement,
    ratios,
    render_json,
    render_text,
)
from loadtest.errors import UsageError
from loadtest.gateway import GatewayInstance, parse_overrides
from loadtest.postfix import POSTCONF, POSTFIX, PostfixInstance
from loadtest.report import Report, Tally
from tests.support.peers import needs
from ugem.core.config import load_config

needs_postfix = needs(
    Path(POSTCONF).exists() and Path(POSTFIX).exists(), "Postfix is not installed"
)


def _postfix(tmp_path: Path, **overrides: str) -> PostfixInstance:
    base = tmp_path / "postfix"
    instance = PostfixInstance(base, 40125, "example.org", ("127.0.0.1", 40126), overrides)
    instance.write()
    return instance


@needs_postfix
def test_postconf_accepts_the_private_instance(tmp_path: Path) -> None:
    instance = _postfix(tmp_path)
    shown = subprocess.run(
        [POSTCONF, "-c", str(instance.conf), "-n"], capture_output=True, text=True, check=True
    )
    assert "warning" not in shown.stderr
    params = dict(line.split(" = ", 1) for line in shown.stdout.splitlines() if " = " in line)
    assert params["config_directory"] == str(instance.conf)
    assert params["queue_directory"] == str(instance.queue)
    assert params["inet_interfaces"] == "127.0.0.1"
    assert params["mynetworks"] == "127.0.0.0/8"
    assert params["relay_domains"] == "example.org"
    assert params["in_flow_delay"] == "0"
    assert int(params["default_destination_concurrency_limit"]) >= 50
    assert params["smtp_tls_security_level"] == params["smtpd_tls_security_level"] == "none"
    assert (instance.conf / "transport").read_text() == "example.org smtp:[127.0.0.1]:40126\n"


@needs_postfix
def test_master_cf_has_one_listener_and_no_chroot(tmp_path: Path) -> None:
    instance = _postfix(tmp_path)
    services = subprocess.run(
        [POSTCONF, "-c", str(instance.conf), "-M"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    fields = [line.split() for line in services]
    assert [f[0] for f in fields if f[1] == "inet"] == ["127.0.0.1:40125"]
    assert {f[4] for f in fields} == {"n"}  # the chroot column


@needs_postfix
def test_postfix_check_passes_and_settings_override(tmp_path: Path) -> None:
    instance = _postfix(tmp_path, default_destination_concurrency_limit="100")
    assert "default_destination_concurrency_limit = 100" in instance.check()
    assert (instance.queue / "active").is_dir()  # `postfix check` made the queue


def test_gateway_config_loads_as_the_gateway_would(tmp_path: Path) -> None:
    overrides = parse_overrides(["spool.max_batch=64", "smtp.max_connections_per_ip=200"])
    gateway = GatewayInstance(
        tmp_path / "ugem", 40127, 40128, "example.org", ("127.0.0.1", 40126),
        ("127.0.0.2", "127.0.0.3"), "mdai.gov.kz", overrides=overrides,
    )  # fmt: skip
    gateway.write()
    config = load_config(gateway.config_path, env={})
    assert config.smtp.listen == "127.0.0.1:40127"
    assert config.admin.listen == "127.0.0.1:40128"
    assert config.delivery.routes == {"example.org": "127.0.0.1:40126"}
    assert config.delivery.concurrency_per_destination == 50
    assert config.spool.max_batch == 64
    assert config.smtp.max_connections_per_ip == 200
    assert Path(config.node.data_dir) == tmp_path / "ugem" / "var"


def test_overrides_take_toml_values_or_strings() -> None:
    assert parse_overrides(["a.b=50", "a.c=true", "d.e=hello", 'd.f="x y"']) == {
        "a": {"b": "50", "c": "true"},
        "d": {"e": '"hello"', "f": '"x y"'},
    }
    with pytest.raises(UsageError, match=r"section\.key=value"):
        parse_overrides(["nodot=1"])


def _measurement(name: str, accepted: int, elapsed: float, last_arrival: float) -> Measurement:
    tally = Tally()
    for n in range(accepted):
        tally.accept(f"{name}-{n}", 2048, 0.01 if name == "postfix" else 0.005)
    report = Report.of(
        tally, elapsed, target="t", run_id=name, connections=50, per_connection=100,
        size="2048 bytes", rate="as fast as possible", started_at=1000.0, finished_at=1010.0,
    )  # fmt: skip
    sink = {"messages": accepted, "last_arrival": last_arrival, "lost": 0, "duplicates": 0}
    return Measurement(name, name, report, sink)


def test_side_by_side_ratios_and_table() -> None:
    comparison = Comparison(
        CompareOptions(messages=1000),
        [_measurement("postfix", 1000, 2.0, 1004.0), _measurement("ugem", 1000, 1.0, 1002.0)],
    )
    ratio = ratios(comparison)
    assert ratio["e2e"] == pytest.approx(2.0)  # 500/s against 250/s
    assert ratio["accept_rate"] == pytest.approx(2.0)
    assert ratio["p99"] == pytest.approx(0.5)
    text = render_text(comparison)
    assert "end to end (msg/s)" in text and "250.0" in text and "500.0" in text
    assert "2.00" in text
    data = json.loads(json.dumps(render_json(comparison)))
    assert data["targets"]["ugem"]["end_to_end_rate"] == pytest.approx(500.0)
    assert data["ratio"]["e2e"] == pytest.approx(2.0)


def test_compare_sh_calls_the_compare_command() -> None:
    script = Path(__file__).resolve().parents[2] / "loadtest" / "compare.sh"
    assert shutil.which("sh") is not None
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    assert "--only" in done.stdout and "--workers" in done.stdout
