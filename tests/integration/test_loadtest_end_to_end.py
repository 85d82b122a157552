"""Scenario: the load generator and the sink end to end through a real gateway node.

A few hundred messages (behaviour, not speed): from two connected servers
(127.0.0.2, 127.0.0.3) to a routed domain, every message the gateway accepted
arrives at the loadtest sink exactly once; the report's counts add up and its
JSON form (from the CLI, with the sink as its own process) has every field.
From an address that is no connection's server, every message to an external
domain is refused with 554 and counted by that code, and nothing arrives.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from loadtest import control, generator
from loadtest.content import Template, parse_size
from loadtest.generator import RunOptions
from loadtest.report import Report
from loadtest.sink import SinkServer
from tests.support.node import connect, node_config, running_node, smtp_address
from tests.support.waiting import eventually

SOURCES = ("127.0.0.2", "127.0.0.3")


@pytest.fixture
async def loadtest_sink() -> AsyncIterator[SinkServer]:
    sink = await SinkServer.start()
    yield sink
    await sink.stop()


def _consistent(report: Report, sent: int) -> None:
    assert report.sent == sent
    assert report.sent == report.accepted + sum(report.refused.values()) + sum(
        report.failed.values()
    )
    lat = report.latency
    if report.accepted:
        assert lat.count == report.accepted
        assert lat.p50 is not None and lat.p90 is not None and lat.p99 is not None
        assert lat.max is not None
        assert 0 < lat.p50 <= lat.p90 <= lat.p99 <= lat.max
        assert report.accept_rate == pytest.approx(report.accepted / report.elapsed)
    assert report.started_at <= report.finished_at


async def test_every_accepted_message_arrives_once(
    tmp_path: Path, loadtest_sink: SinkServer
) -> None:
    route = f"{loadtest_sink.host}:{loadtest_sink.port}"
    config, _ = node_config(tmp_path, delivery={"routes": {"example.org": route}})
    await connect(config, "mdai.gov.kz", list(SOURCES))
    host, port = smtp_address(config)
    options = RunOptions(
        host, port, messages=300, connections=10, per_connection=7, rcpts=2,
        size=parse_size("lognormal:2048:0.5"), sources=SOURCES, timeout=30.0,
    )  # fmt: skip
    async with running_node(config):
        result = await generator.run(options)
        arrivals = loadtest_sink.arrivals
        await eventually(lambda: arrivals.messages >= 300, 60, "300 messages at the sink")
    report = result.report
    _consistent(report, 300)
    assert report.accepted == 300 and report.refused == {} and report.failed == {}
    assert report.pipelining is True
    assert report.sessions >= 300 // 7  # a new session after every 7 messages
    arrivals.expect(result.accepted_ids)
    stats = arrivals.stats()
    assert (stats["messages"], stats["unique_ids"], stats["duplicates"]) == (300, 300, 0)
    assert (stats["lost"], stats["unexpected"], stats["without_id"]) == (0, 0, 0)
    assert stats["recipients"] == 600
    assert stats["first_arrival"] >= report.started_at


async def test_cli_json_report_and_sink_process(tmp_path: Path) -> None:
    sink = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loadtest", "sink", "--listen", "127.0.0.1:0",
        "--control", "127.0.0.1:0", "--stats-file", str(tmp_path / "stats.json"),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert sink.stdout is not None
        ready = json.loads(await asyncio.wait_for(sink.stdout.readline(), 30))
        config, _ = node_config(tmp_path, delivery={"routes": {"example.org": ready["smtp"]}})
        await connect(config, "mdai.gov.kz", list(SOURCES))
        host, port = smtp_address(config)
        async with running_node(config):
            report = await _cli_run(
                f"{host}:{port}", "-n", "200", "-c", "8", "--source", ",".join(SOURCES),
                "--from", "load{n}@mdai.gov.kz", "--to", "user{c}.{n}@example.org",
                "--size", "2048", "--run-id", "clirun", "--json",
                "--ids-file", str(tmp_path / "ids.txt"),
            )  # fmt: skip
            address = tuple(ready["control"].rsplit(":", 1))
            where = (address[0], int(address[1]))
            stats = await _until_arrived(where, 200)
        ids = (tmp_path / "ids.txt").read_text().split()
        stats = await asyncio.to_thread(
            control.request, where, "POST", "/expect", "\n".join(ids).encode()
        )
    finally:
        sink.send_signal(signal.SIGTERM)
        final, _ = await sink.communicate()
    assert await sink.wait() == 0
    assert report["sent"] == report["accepted"] == 200
    assert report["run_id"] == "clirun"
    assert report["refused"] == {} and report["failed"] == {}
    for key in ("p50", "p90", "p99", "max", "mean"):
        assert report["latency_ms"][key] > 0
    assert report["latency_ms"]["count"] == 200
    assert sorted(ids) == sorted(f"clirun-{n}" for n in range(200))
    assert (stats["unique_ids"], stats["duplicates"], stats["lost"]) == (200, 0, 0)
    at_exit = json.loads(final.decode().splitlines()[-1])
    assert at_exit["messages"] == 200
    assert json.loads((tmp_path / "stats.json").read_text()) == at_exit


async def _cli_run(*args: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loadtest", "run", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return dict(json.loads(out))


async def _until_arrived(where: tuple[str, int], count: int) -> dict[str, Any]:
    stats: dict[str, Any] = {}

    async def poll() -> bool:
        nonlocal stats
        stats = await asyncio.to_thread(control.request, where, "GET", "/stats")
        return bool(stats["unique_ids"] >= count)

    for _ in range(600):
        if await poll():
            return stats
        await asyncio.sleep(0.1)
    raise AssertionError(f"only {stats.get('unique_ids')} of {count} arrived: {stats}")


async def test_unconnected_sender_is_refused_with_554_by_code(
    tmp_path: Path, loadtest_sink: SinkServer
) -> None:
    route = f"{loadtest_sink.host}:{loadtest_sink.port}"
    config, _ = node_config(tmp_path, delivery={"routes": {"example.org": route}})
    await connect(config, "mdai.gov.kz", ["127.0.0.2"])
    host, port = smtp_address(config)
    options = RunOptions(
        host, port, messages=60, connections=4, per_connection=20, sources=("127.0.0.9",),
        sender=Template.parse("load{n}@elsewhere.org", "--from"), timeout=30.0,
    )  # fmt: skip
    async with running_node(config):
        result = await generator.run(options)
    report = result.report
    _consistent(report, 60)
    assert report.accepted == 0
    assert report.refused == {554: 60}
    assert report.rcpt_refused == {554: 60}
    assert report.latency.count == 0 and result.accepted_ids == []
    assert loadtest_sink.arrivals.messages == 0
    assert "554: 60" in report.to_text()
