"""Scenario: `loadtest idle` holds sessions open on a real `ugem serve` and reads its memory.

200 sessions from two addresses to a node that allows 80 per address: 160 are
greeted and held, 40 get 421 (counted by code), none fails and none is closed
by the node during the hold; the node's VmRSS is read before and with the
sessions held (the process alone: one worker). The node still serves after.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from loadtest.gateway import GatewayInstance
from loadtest.ports import free_port
from loadtest.processes import wait_for_greeting

SOURCES = ("127.0.0.2", "127.0.0.3")


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[GatewayInstance]:
    node = GatewayInstance(
        tmp_path / "ugem", free_port(), free_port(), "example.org", ("127.0.0.1", free_port()),
        SOURCES, "mdai.gov.kz", overrides={"smtp": {"max_connections_per_ip": "80"}},
    )  # fmt: skip
    try:
        await node.start()
        yield node
    finally:
        await node.stop()


async def test_idle_sessions_counted_and_memory_read(gateway: GatewayInstance) -> None:
    assert gateway.proc is not None
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loadtest", "idle", f"127.0.0.1:{gateway.port}",
        "--connections", "200", "--source", ",".join(SOURCES), "--pid", str(gateway.proc.pid),
        "--hold", "1s", "--concurrency", "50", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["greeted"] == 160
    assert report["refused"] == {"421": 40}
    assert report["failed"] == {} and report["dropped_during_hold"] == 0
    before, held = report["memory_before"], report["memory_held"]
    assert before["pid"] == held["pid"] == gateway.proc.pid
    assert held["scope"] == "the process alone"
    assert before["rss_kib"] > 10_000 and held["rss_kib"] > 10_000  # a Python node: megabytes
    assert report["open_s"] > 0 and report["open_rate"] > 0
    await wait_for_greeting("127.0.0.1", gateway.port, 10, "the node after the idle run")
