"""The comparison's set-up: a Postfix configuration Postfix accepts, a gateway config the
gateway loads, the settings given on the command line, and the side-by-side table; with
Postfix's C tools at the ends: smtp-source's command line and counter, smtp-sink's counter
(parsed from captured output), the loss counted by number, the tools named in the reports.

The full comparison is not run here (minutes of load); see BENCHMARKS.md.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from loadtest import harness, processes, smtp_source
from loadtest.__main__ import main
from loadtest.compare import (
    CompareOptions,
    Comparison,
    Measurement,
    _gateway_overrides,
    ratios,
    render_json,
    render_text,
)
from loadtest.content import parse_size
from loadtest.errors import TargetError, UsageError
from loadtest.gateway import GatewayInstance, parse_overrides
from loadtest.postfix import POSTCONF, POSTFIX, PostfixInstance
from loadtest.rate import parse_rate
from loadtest.report import Report, Tally
from loadtest.smtp_sink import SinkCounter, sink_command
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


# -- Postfix's C tools at the two ends ----------------------------------------------------

# `smtp-sink -c` as captured from a run of 23 messages over 5 sessions (abridged)
SINK_OUTPUT = (
    b"sess=0 quit=0 mesg=1\rsess=0 quit=0 mesg=2\rsess=1 quit=1 mesg=2\r"
    b"sess=1 quit=1 mesg=3\rsess=4 quit=4 mesg=5\rsess=5 quit=5 mesg=5\r"
    b"sess=21 quit=21 mesg=22\rsess=22 quit=22 mesg=22\rsess=22 quit=22 mesg=23\r"
    b"sess=23 quit=23 mesg=23\r"
)


def test_sink_counter_reads_smtp_sink_output_in_any_pieces() -> None:
    counter = SinkCounter()
    for at, start in enumerate(range(0, len(SINK_OUTPUT), 7)):  # records split anywhere
        counter.feed(SINK_OUTPUT[start : start + 7], now=100.0 + at)
    assert (counter.messages, counter.sessions, counter.quits) == (23, 23, 23)
    assert counter.first_arrival == 100.0 + SINK_OUTPUT.index(b"\r") // 7
    last_mesg = SINK_OUTPUT.index(b"mesg=23") + len(b"mesg=23")  # completed by the next "\r"
    assert counter.last_arrival == 100.0 + last_mesg // 7
    stats = counter.stats()
    assert (stats["messages"], stats["unique_ids"], stats["without_id"]) == (23, 0, 23)
    assert stats["duplicates"] is None


def test_sink_counter_keeps_the_last_arrival_when_only_sessions_end() -> None:
    counter = SinkCounter()
    counter.feed(b"sess=0 quit=0 mesg=4\r", now=5.0)
    counter.feed(b"sess=1 quit=1 mes", now=6.0)
    assert (counter.messages, counter.last_arrival) == (4, 5.0)
    counter.feed(b"g=4\rsess=2 quit=2 mesg=4\r", now=7.0)
    assert (counter.messages, counter.sessions, counter.last_arrival) == (4, 2, 5.0)


def test_smtp_sink_drops_privileges_as_root_only() -> None:
    assert sink_command("/usr/sbin/smtp-sink", 2600, as_root=True) == [
        "/usr/sbin/smtp-sink", "-c", "-u", "nobody", "127.0.0.1:2600", "1024",
    ]  # fmt: skip
    assert "-u" not in sink_command("/usr/sbin/smtp-sink", 2600, as_root=False)


def test_smtp_source_command_matches_the_load() -> None:
    shape = CompareOptions(messages=6000, connections=50, size=parse_size("2048"))
    command = smtp_source.source_command("/usr/sbin/smtp-source", shape, 2525)
    flags = dict(itertools.pairwise(command))
    assert flags["-s"] == "50" and flags["-m"] == "6000"
    assert int(flags["-l"]) + smtp_source.header_bytes() == 2048
    assert flags["-f"] == "load@mdai.gov.kz" and flags["-t"] == "user@example.org"
    assert {"-c", "-N", "-d"} <= set(command) and command[-1] == "127.0.0.1:2525"
    one_each = smtp_source.source_command("smtp-source", replace(shape, per_connection=1), 1)
    assert "-d" not in one_each  # a connection per message
    assert smtp_source.sessions(shape) == 50
    assert smtp_source.sessions(replace(shape, per_connection=1)) == 6000


def test_smtp_source_counter_and_report() -> None:
    assert smtp_source.data_ends(b"1\r2\r3\r\n") == 3
    assert smtp_source.data_ends(b"") == 0
    shape = CompareOptions(messages=300, connections=10)
    done = smtp_source.source_report(shape, 2525, "ugem", 0, 300, "", 10.0, 12.0)
    assert (done.sent, done.accepted, done.failed) == (300, 300, {})
    assert done.accept_rate == pytest.approx(150.0)
    assert done.latency.count == 0 and done.latency.p99 is None  # not measured, not made up
    assert done.pipelining is False
    error = "smtp-source: fatal: recipient rejected: 554 5.7.1 no"
    failed = smtp_source.source_report(shape, 2525, "ugem", 1, 120, error, 10.0, 11.0)
    assert failed.accepted == 120
    assert failed.failed == {"smtp-source exit 1": 180}
    assert failed.failure_examples == {"smtp-source exit 1": error}
    assert failed.sent == failed.accepted + sum(failed.failed.values())


def test_smtp_source_refuses_what_it_cannot_send() -> None:
    with pytest.raises(UsageError, match="fixed size"):
        CompareOptions(size=parse_size("lognormal:2048:0.5"), driver="smtp-source").check()
    with pytest.raises(UsageError, match="--rate"):
        CompareOptions(rate=parse_rate("500"), driver="smtp-source").check()
    with pytest.raises(UsageError, match="unknown sink"):
        CompareOptions(sink="exim").check()
    CompareOptions(size=parse_size("lognormal:2048:0.5"), rate=parse_rate("500")).check()


def test_loss_by_number_leaves_duplicates_unchecked() -> None:
    stats = {"messages": 290, "last_arrival": 5.0}
    assert harness.counted_by_number(stats, 300) == {
        "messages": 290, "last_arrival": 5.0, "expected": 300, "lost": 10, "unexpected": 0,
        "duplicates": None,
    }  # fmt: skip
    assert harness.counted_by_number({"messages": 302}, 300)["unexpected"] == 2


def test_gateway_takes_smtp_source_from_127_0_0_1() -> None:
    sources = ("127.0.0.2", "127.0.0.3")
    assert harness.gateway_sources("python", sources) == sources
    assert harness.gateway_sources("smtp-source", sources) == (*sources, "127.0.0.1")
    many = CompareOptions(connections=300, driver="smtp-source")
    assert _gateway_overrides(many) == {"smtp": {"max_connections_per_ip": "300"}}
    assert _gateway_overrides(replace(many, driver="python")) == {}
    mine = replace(many, ugem_overrides={"smtp": {"max_connections_per_ip": "50"}})
    assert _gateway_overrides(mine) == {"smtp": {"max_connections_per_ip": "50"}}


def test_reports_name_the_c_tools() -> None:
    options = CompareOptions(messages=1000, driver="smtp-source", sink="smtp-sink")
    tally = Tally()
    report = Report.of(
        tally, 2.0, target="t", run_id="x", connections=50, per_connection=1000,
        size="2048 bytes", rate="as fast as possible", started_at=1000.0, finished_at=1002.0,
    )  # fmt: skip
    report = replace(report, sent=1000, accepted=1000, accept_rate=500.0)
    sink = harness.counted_by_number({"messages": 1000, "last_arrival": 1004.0}, 1000)
    comparison = Comparison(options, [Measurement("ugem", "UGEM", report, sink, 0.1, 0)])
    text = render_text(comparison)
    assert "smtp-source" in text and "smtp-sink" in text and "duplicates not checked" in text
    assert "from 127.0.0.1" in text
    assert "1000/0/-" in text  # arrived/lost/dup
    rows = {line[:22].strip(): line[22:].strip() for line in text.splitlines()}
    assert rows["end to end (msg/s)"] == "250.0"
    assert rows["accept p99 (ms)"] == "-" and rows["driver exit status"] == "0"
    data = json.loads(json.dumps(render_json(comparison)))
    assert (data["driver"], data["sink"], data["ids_checked"]) == (
        "smtp-source",
        "smtp-sink",
        False,
    )
    assert data["load"]["sources"] == ["127.0.0.1"]
    assert data["targets"]["ugem"]["driver_exit"] == 0
    assert data["targets"]["ugem"]["report"]["latency_ms"]["p99"] is None
    assert data["targets"]["ugem"]["sink"]["duplicates"] is None


def test_a_missing_c_tool_is_named_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(processes, "SBIN", (str(tmp_path),))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TargetError, match="smtp-sink is not installed"):
        harness.require_tools("python", "smtp-sink")
    code = main(["compare", "postfix", "--only", "ugem", "--driver", "smtp-source"])
    err = capsys.readouterr().err
    assert code == 1
    assert "smtp-source is not installed" in err and "Traceback" not in err


def test_cli_refuses_a_size_distribution_for_smtp_source(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["compare", "postfix", "--driver", "smtp-source", "--size", "uniform:1000:3000"]
    assert main(args) == 2
    assert "--driver smtp-source sends one fixed size" in capsys.readouterr().err
