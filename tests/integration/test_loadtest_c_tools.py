"""Scenario: Postfix's own C tools at the two ends of the comparison, over loopback.

smtp-source drives a few hundred messages through a real gateway node (from
127.0.0.1, the connection's server here) to a real smtp-sink: every accepted
message arrives, counted by smtp-sink's counter, and the end-to-end rate
follows. Each C tool also faces the project's own other end: smtp-source into
the Python sink (drained by number: its messages carry no id), the Python
generator into smtp-sink. A refusal stops smtp-source: its exit status and
its error are reported, not raised; an smtp-sink that cannot listen says why.
"""

from __future__ import annotations

import io
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from loadtest import harness, smtp_sink
from loadtest.compare import CompareOptions
from loadtest.content import parse_size
from loadtest.errors import TargetError
from loadtest.processes import SinkProcess, find_tool
from loadtest.sink import SinkServer
from loadtest.smtp_sink import SmtpSinkProcess
from loadtest.spec import parse_reply
from tests.support.node import connect, node_config, running_node, smtp_address
from tests.support.peers import needs


def _installed(tool: str) -> bool:
    try:
        find_tool(tool)
    except TargetError:
        return False
    return True


needs_c_tools = needs(
    _installed("smtp-source") and _installed("smtp-sink"),
    "Postfix's smtp-source and smtp-sink are not installed",
)

SHAPE = CompareOptions(
    messages=300, connections=10, size=parse_size("2048"), driver="smtp-source", timeout=30.0
)


@pytest.fixture
async def c_sink(tmp_path: Path) -> AsyncIterator[SmtpSinkProcess]:
    sink = await SmtpSinkProcess.start(tmp_path / "smtp-sink")
    yield sink
    await sink.stop()


@needs_c_tools
async def test_smtp_source_through_the_gateway_to_smtp_sink(
    tmp_path: Path, c_sink: SmtpSinkProcess
) -> None:
    route = "{}:{}".format(*c_sink.smtp)
    config, _ = node_config(tmp_path, delivery={"routes": {"example.org": route}})
    await connect(config, "mdai.gov.kz", list(harness.gateway_sources("smtp-source", ())))
    _, port = smtp_address(config)
    async with running_node(config):
        driven = await harness.drive("smtp-source", SHAPE, port, "ugem", None, io.StringIO())
        stats = await harness.arrivals(c_sink, driven, by_id=False, stall=30.0)
    report = driven.report
    assert driven.exit_status == 0 and driven.accepted_ids is None
    assert (report.sent, report.accepted, report.failed) == (300, 300, {})
    assert report.latency.count == 0 and report.latency.p50 is None
    assert (stats["messages"], stats["lost"], stats["unexpected"]) == (300, 0, 0)
    assert stats["duplicates"] is None
    assert report.started_at < stats["first_arrival"] <= stats["last_arrival"]
    assert stats["sessions"] >= 1  # the gateway's delivery sessions ended


@needs_c_tools
async def test_smtp_source_into_the_python_sink(tmp_path: Path) -> None:
    sink = await SinkProcess.start(tmp_path / "sink")
    try:
        one_each = CompareOptions(
            messages=200, connections=8, per_connection=1, size=parse_size("1024"),
            driver="smtp-source",
        )  # fmt: skip
        driven = await harness.drive(
            "smtp-source", one_each, sink.smtp[1], "sink", None, io.StringIO()
        )
        stats = await harness.arrivals(sink, driven, by_id=False, stall=10.0)
    finally:
        await sink.stop()
    assert driven.exit_status == 0 and driven.report.accepted == 200
    assert (stats["messages"], stats["without_id"], stats["lost"]) == (200, 200, 0)
    assert stats["sessions"] == 200  # a connection per message without -d
    assert stats["bytes"] / 200 == pytest.approx(1024, abs=8)  # -l: the size less the header


@needs_c_tools
async def test_python_generator_into_smtp_sink(c_sink: SmtpSinkProcess) -> None:
    shape = CompareOptions(messages=200, connections=8, per_connection=25, sources=())
    driven = await harness.drive("python", shape, c_sink.smtp[1], "sink", None, io.StringIO())
    stats = await harness.arrivals(c_sink, driven, by_id=False, stall=10.0)
    assert driven.accepted_ids is not None and len(driven.accepted_ids) == 200
    assert driven.report.latency.count == 200
    assert (stats["messages"], stats["lost"], stats["duplicates"]) == (200, 0, None)
    # the load's 8 sessions, and the probes that waited for its greeting: as many as it took
    # (a probe that connected before smtp-sink greeted tries again), so at least 8 + 1
    assert stats["sessions"] >= 200 // 25 + 1


@needs_c_tools
async def test_a_refusal_stops_smtp_source_and_is_reported() -> None:
    refusing = await SinkServer.start(rcpt_reply=parse_reply("554 5.7.1 Client host blocked"))
    try:
        driven = await harness.drive(
            "smtp-source", SHAPE, refusing.port, "refused", None, io.StringIO()
        )
    finally:
        await refusing.stop()
    report = driven.report
    assert driven.exit_status == 1
    assert report.accepted == 0 and report.failed == {"smtp-source exit 1": 300}
    assert "recipient rejected: 554" in report.failure_examples["smtp-source exit 1"]
    assert refusing.arrivals.messages == 0


@needs_c_tools
async def test_smtp_sink_on_a_busy_port_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setattr(smtp_sink, "free_port", lambda: taken.getsockname()[1])
        with pytest.raises(TargetError, match=r"smtp-sink exited 1: .*Address already in use"):
            await SmtpSinkProcess.start(tmp_path / "busy", timeout=10.0)
