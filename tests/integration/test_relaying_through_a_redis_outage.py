"""Scenario: a node on a Redis store keeps relaying through a Redis outage (fail-static).

Against a real redis-server of the test's own (`tests.support.redis_outage`:
append-only file, fsync always), a node relays mdai.gov.kz's mail (from
127.0.0.2) to the sink while Redis is killed under load, hung (SIGSTOP),
restarted with its data or empty, or down when the node starts. Each time the
connected server gets 250 for every message and the sink gets each one; the
node says so once (one WARNING per change of state, no traceback), `/readyz`
answers 200 "degraded" with the store's state and the age of its registry
copy, and the node takes the store back when it returns, unless the store
came back empty: that one it refuses (a 554 Relay access denied for every
connected server, were it taken) until `ugem store restore` writes the node's
copy back. Beyond `[store] max_stale` (a FakeClock moved, no sleeping) the
node is not ready and MAIL gets 451. A change that needs the store (an
operator's suspension) answers 503 in the API and exits 75 in the CLI.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay import replies
from tests.support.clients import Sent
from tests.support.node import api_client, node_relaying_to, running_node, send_mail
from tests.support.redis_outage import OwnRedis
from tests.support.sink import Sink
from tests.support.waiting import eventually
from ugem.core.clock import FakeClock
from ugem.core.config import Config
from ugem.core.registry_watch import REFUSED, UNREACHABLE, UP
from ugem.core.services.tokens import Role
from ugem.core.store import open_store
from ugem.node import Node

pytestmark = pytest.mark.slow

CONN = "mdai.gov.kz"
SERVER = "127.0.0.2"
STRANGER = "127.0.0.3"  # no connection's server: never relayed, outage or not
STORE_LINES = {"store_unreachable", "store_refused", "store_recovered"}
HUNG_MESSAGES = 20
HUNG_BOUND = 10.0  # seconds for HUNG_MESSAGES while Redis hangs; a 5 s stall each: 100 s


async def send_load(config: Config, first: int, count: int, concurrency: int = 4) -> list[Sent]:
    """`count` messages from the connected server, `concurrency` sessions at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(number: int) -> Sent:
        async with gate:
            return await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], SERVER, f"m{number}")

    return list(await asyncio.gather(*(one(n) for n in range(first, first + count))))


def said(sent: Sent) -> str:
    return f"{sent.code} {sent.text}"


def arrived(sink: Sink) -> set[str]:
    """The subjects (m<number>) of the messages the sink has."""
    found = set()
    for msg in sink.messages:
        for line in msg.data.split(b"\r\n"):
            if line.startswith(b"Subject: "):
                found.add(line[len(b"Subject: ") :].decode())
    return found


async def readyz(config: Config) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=f"http://{config.admin.listen}") as http:
        answer = await http.get("/readyz")
    return answer.status_code, answer.json()


def state(node: Node) -> str:
    assert node.registry is not None
    return node.registry.watch.state


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


def ugem(config_path: Path, *words: str) -> subprocess.CompletedProcess[str]:
    """`ugem --config FILE WORDS...` as an operator runs it, in a process of its own."""
    command = [sys.executable, "-m", "ugem.cli", "--config", str(config_path), *words]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


async def test_redis_killed_under_load_then_back_with_its_data(
    tmp_path: Path, sink: Sink, own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config, _ = await node_relaying_to(tmp_path, sink, store={"url": own_redis.url})
    async with running_node(config) as node:
        load = asyncio.create_task(send_load(config, 0, 80))
        await sink.wait_until(lambda: len(sink.messages) >= 10, 30, "10 messages before")
        own_redis.kill()
        killed = time.monotonic()
        await eventually(lambda: state(node) == UNREACHABLE, 5, "the outage noticed")
        noticed = time.monotonic() - killed
        sent = await load
        assert [s.code for s in sent] == [250] * 80, [s for s in sent if not s.ok]
        during = await send_load(config, 80, 20)  # all of them after the outage was noticed
        assert [s.code for s in during] == [250] * 20
        stranger = await send_mail(config, "s@spam.test", ["x@example.org"], STRANGER)
        assert said(stranger) == str(replies.RELAY_DENIED)
        await sink.wait_until(lambda: len(arrived(sink)) == 100, 30, "every message at the sink")
        code, body = await readyz(config)
        assert (code, body["status"], body["store"]) == (200, "degraded", UNREACHABLE)
        assert body["registry_copy_age"] >= 0 and body["reason"].startswith("degraded: ")

        own_redis.restart()
        restarted = time.monotonic()
        await eventually(lambda: state(node) == UP, 10, "the store taken back")
        recovered = time.monotonic() - restarted
        code, body = await readyz(config)
        assert (code, body["status"], body["store"]) == (200, "ready", UP)
        assert (await send_load(config, 100, 1))[0].ok
    store_lines = [w for w in warnings(caplog) if w in STORE_LINES]
    assert store_lines == ["store_unreachable", "store_recovered"]
    assert len(warnings(caplog)) <= 4, warnings(caplog)  # + the traffic log's, once each side
    no_tracebacks(caplog)
    print(f"\nkilled: noticed in {noticed:.2f} s, recovered {recovered:.2f} s after the restart")


async def test_redis_hung_costs_one_bounded_wait_not_a_stall_per_message(
    tmp_path: Path, sink: Sink, own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    config, _ = await node_relaying_to(tmp_path, sink, store={"url": own_redis.url})
    async with running_node(config) as node:
        assert (await send_load(config, 0, 1))[0].ok
        own_redis.pause()
        started = time.monotonic()
        took = []
        for number in range(1, HUNG_MESSAGES + 1):  # one after the other: each one timed
            begun = time.monotonic()
            sent = await send_load(config, number, 1)
            assert sent[0].ok, sent
            took.append(time.monotonic() - begun)
        elapsed = time.monotonic() - started
        assert elapsed < HUNG_BOUND, took
        assert state(node) == UNREACHABLE
        code, body = await readyz(config)
        assert (code, body["status"], body["store"]) == (200, "degraded", UNREACHABLE)

        own_redis.resume()
        resumed = time.monotonic()
        await eventually(lambda: state(node) == UP, 15, "the store taken back")
        recovered = time.monotonic() - resumed
        await sink.wait_until(lambda: len(arrived(sink)) == HUNG_MESSAGES + 1, 30, "all")
    store_lines = [w for w in warnings(caplog) if w in STORE_LINES]
    assert store_lines == ["store_unreachable", "store_recovered"]
    no_tracebacks(caplog)
    print(
        f"\nhung: {HUNG_MESSAGES} messages in {elapsed:.2f} s (slowest {max(took):.2f} s, "
        f"median {sorted(took)[len(took) // 2]:.3f} s), recovered {recovered:.2f} s after SIGCONT"
    )


async def test_redis_back_empty_is_refused_until_restored_from_the_copy(
    tmp_path: Path, sink: Sink, own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    config, path = await node_relaying_to(tmp_path, sink, store={"url": own_redis.url})
    async with running_node(config) as node:
        assert (await send_load(config, 0, 1))[0].ok
        own_redis.kill()
        own_redis.restart(empty=True)
        await eventually(lambda: state(node) == REFUSED, 10, "the empty store refused")
        sent = await send_load(config, 1, 20)
        assert [s.code for s in sent] == [250] * 20  # not 554 5.7.1 Relay access denied
        code, body = await readyz(config)
        assert (code, body["status"], body["store"]) == (200, "degraded", REFUSED)
        assert "no generation" in body["reason"]

        done = await asyncio.to_thread(ugem, path, "store", "restore")
        assert done.returncode == 0, done.stderr
        assert "restored 1 connections" in done.stdout
        await eventually(lambda: state(node) == UP, 10, "the restored store taken")
        assert (await send_load(config, 21, 1))[0].ok
        await sink.wait_until(lambda: len(arrived(sink)) == 22, 30, "every message at the sink")
    store = open_store(own_redis.url)
    try:
        assert [c.id for c in await store.list()] == [CONN]
    finally:
        await store.close()
    assert [w for w in warnings(caplog) if w in STORE_LINES][-1] == "store_recovered"
    assert "store_refused" in warnings(caplog)
    assert not [r for r in caplog.records if r.getMessage() == "store_refused" and r.exc_info]


async def test_a_node_started_while_redis_is_down_relays_on_its_disk_copy(
    tmp_path: Path, sink: Sink, own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config, _ = await node_relaying_to(tmp_path, sink, store={"url": own_redis.url})
    async with running_node(config):
        assert (await send_load(config, 0, 1))[0].ok  # its copy is on disk now
    own_redis.kill()
    async with running_node(config) as node:
        assert state(node) == UNREACHABLE
        assert [s.code for s in await send_load(config, 1, 5)] == [250] * 5
        code, body = await readyz(config)
        assert (code, body["status"], body["store"]) == (200, "degraded", UNREACHABLE)
        own_redis.restart()
        await eventually(lambda: state(node) == UP, 10, "the store taken back")
        await sink.wait_until(lambda: len(arrived(sink)) == 6, 30, "every message at the sink")
        await eventually(lambda: "anomaly_started" in logged(caplog), 10, "detector started")


async def test_a_copy_older_than_max_stale_is_not_ready_and_refuses_mail(
    tmp_path: Path, sink: Sink, own_redis: OwnRedis
) -> None:
    clock = FakeClock()
    config, _ = await node_relaying_to(tmp_path, sink, store={"url": own_redis.url})
    async with running_node(config, clock) as node:
        own_redis.kill()
        await eventually(lambda: state(node) == UNREACHABLE, 5, "the outage noticed")
        clock.advance(config.store.max_stale)
        code, body = await readyz(config)
        assert (code, body["status"]) == (200, "degraded")
        assert (await send_load(config, 0, 1))[0].ok
        clock.advance(1)
        code, body = await readyz(config)
        assert (code, body["status"], body["ready"]) == (503, "not ready", False)
        assert "max_stale" in body["reason"]
        sent = await send_load(config, 1, 1)
        assert said(sent[0]) == str(replies.REGISTRY_UNAVAILABLE)


async def test_a_suspension_during_the_outage_is_503_in_the_api_and_75_in_the_cli(
    tmp_path: Path, sink: Sink, own_redis: OwnRedis
) -> None:
    config, path = await node_relaying_to(tmp_path, sink, store={"url": own_redis.url})
    async with running_node(config) as node, api_client(node, "noc", Role.OPERATOR) as api:
        own_redis.kill()
        await eventually(lambda: state(node) == UNREACHABLE, 5, "the outage noticed")
        answer = await api.post(f"/v1/connections/{CONN}/suspend", json={"reason": "abuse"})
        assert answer.status_code == 503
        assert "redis store" in answer.json()["detail"]
        done = await asyncio.to_thread(ugem, path, "connection", "suspend", CONN, "--reason", "x")
        assert done.returncode == 75
        assert done.stderr.startswith("ugem: store unavailable: redis store ")
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert (await send_load(config, 0, 1))[0].ok  # and the connection still relays
