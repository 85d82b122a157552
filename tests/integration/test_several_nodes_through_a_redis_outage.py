"""Scenario: three nodes on one Redis keep relaying through its death, its hang, its empty return.

Three nodes (each its own data directory, spool and ports) share a redis-server
of the test's own (`tests.support.redis_outage`: append-only file, fsync
always) and relay mdai.gov.kz's mail (from 127.0.0.2), a load through each node
at once, to one sink. Redis is then killed under that load and brought back
with its data, hung (SIGSTOP) under it and resumed, or killed and restarted
empty. Each time every message of the connected server gets 250 from every
node, every one arrives once, every node notices (`node.registry.watch`) and
takes the store back; the empty store is refused by every node (no 554 Relay
access denied) until `ugem store restore` run against one node's config puts
the registry back, and then every node takes it. Once the nodes have stopped,
Redis holds no connection of theirs: none was left open, none opened after a
close (`RedisServer.clients`, the server's own list, not the collector's luck).
The times to notice and to recover are printed for the note.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path

import pytest

from tests.support.clients import Sent
from tests.support.node import connect, node_config, running_node, send_mail
from tests.support.redis_outage import OwnRedis
from tests.support.sink import Sink
from tests.support.waiting import eventually, eventually_read
from ugem.core.config import Config
from ugem.core.registry_watch import REFUSED, UNREACHABLE, UP
from ugem.node import Node

pytestmark = pytest.mark.slow

CONN, SERVER = "mdai.gov.kz", "127.0.0.2"
NODES = 3
PER_NODE = 40  # messages through each node under the outage
SESSIONS = 3  # concurrent sessions into each node


@contextlib.asynccontextmanager
async def three_nodes(tmp_path: Path, sink: Sink, redis: OwnRedis) -> AsyncIterator[list[Node]]:
    routes = {"routes": {"example.org": f"{sink.host}:{sink.port}"}}
    made = []
    for i in range(NODES):
        (tmp_path / f"n{i}").mkdir()
        made.append(node_config(tmp_path / f"n{i}", store={"url": redis.url}, delivery=routes))
    await connect(made[0][0], CONN, [SERVER])
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(running_node(c)) for c, _ in made]
    await eventually_read(partial(left_open, redis), lambda open_: open_ == [], 10, "all closed")


async def left_open(redis: OwnRedis) -> list[dict[str, str]]:
    """The connections Redis still holds (the nodes have stopped: there should be none)."""
    return redis.clients()


class Load:
    """Messages from the connected server through every node at once, numbered apart."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes
        self.sent: list[Sent] = []
        self.numbers = iter(range(1_000_000))

    async def run(self, per_node: int) -> None:
        await asyncio.gather(*(self._through(n.config, per_node) for n in self.nodes))

    async def _through(self, config: Config, count: int) -> None:
        gate = asyncio.Semaphore(SESSIONS)

        async def one() -> None:
            async with gate:
                subject = f"m{next(self.numbers)}"
                sent = await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], SERVER, subject)
                self.sent.append(sent)

        await asyncio.gather(*(one() for _ in range(count)))

    def refused(self) -> list[str]:
        return [f"{s.code} {s.text}" for s in self.sent if s.code != 250]


def states(nodes: list[Node]) -> set[str]:
    return {n.registry.watch.state for n in nodes if n.registry is not None}


def all_in(nodes: list[Node], state: str) -> Callable[[], bool]:
    return lambda: states(nodes) == {state}


def subjects(sink: Sink) -> list[str]:
    found = []
    for msg in sink.messages:
        for line in msg.data.split(b"\r\n"):
            if line.startswith(b"Subject: "):
                found.append(line[len(b"Subject: ") :].decode())
    return found


async def all_arrived(sink: Sink, load: Load) -> None:
    await sink.wait_until(lambda: len(sink.messages) >= len(load.sent), 60, "every message")
    got = subjects(sink)
    assert len(got) == len(set(got)) == len(load.sent)  # each once


async def test_three_nodes_relay_through_redis_killed_under_load_and_back(
    tmp_path: Path, sink: Sink, own_redis: OwnRedis
) -> None:
    async with three_nodes(tmp_path, sink, own_redis) as nodes:
        load = Load(nodes)
        running = asyncio.create_task(load.run(PER_NODE))
        await sink.wait_until(lambda: len(sink.messages) >= 15, 30, "mail before the kill")
        own_redis.kill()
        killed = time.monotonic()
        await eventually(all_in(nodes, UNREACHABLE), 10, "every node noticed")
        noticed = time.monotonic() - killed
        await running
        await load.run(5)  # and after every node knew
        assert load.refused() == []
        own_redis.restart()
        restarted = time.monotonic()
        await eventually(all_in(nodes, UP), 15, "every node took the store back")
        recovered = time.monotonic() - restarted
        await load.run(1)
        assert load.refused() == []
        await all_arrived(sink, load)
    print(
        f"\n3 nodes, Redis killed: {len(load.sent)} messages, 0 refused; every node noticed "
        f"{noticed:.2f} s after SIGKILL, all back {recovered:.2f} s after the restart"
    )


async def test_three_nodes_relay_through_redis_hung_under_load(
    tmp_path: Path, sink: Sink, own_redis: OwnRedis
) -> None:
    async with three_nodes(tmp_path, sink, own_redis) as nodes:
        load = Load(nodes)
        running = asyncio.create_task(load.run(PER_NODE))
        await sink.wait_until(lambda: len(sink.messages) >= 15, 30, "mail before the hang")
        own_redis.pause()
        hung = time.monotonic()
        await eventually(all_in(nodes, UNREACHABLE), 15, "every node noticed")
        noticed = time.monotonic() - hung
        await running
        begun = time.monotonic()
        await load.run(5)  # once every node knows: no wait on the hung store per message
        after = time.monotonic() - begun
        assert after < 5.0, f"{after:.2f} s for 5 messages a node"
        assert load.refused() == []
        own_redis.resume()
        resumed = time.monotonic()
        await eventually(all_in(nodes, UP), 20, "every node took the store back")
        recovered = time.monotonic() - resumed
        await all_arrived(sink, load)
    print(
        f"\n3 nodes, Redis hung: {len(load.sent)} messages, 0 refused; every node noticed "
        f"{noticed:.2f} s after SIGSTOP; 15 messages after it in {after:.2f} s; all back "
        f"{recovered:.2f} s after SIGCONT"
    )


async def test_three_nodes_refuse_redis_back_empty_until_one_restores_it(
    tmp_path: Path, sink: Sink, own_redis: OwnRedis
) -> None:
    async with three_nodes(tmp_path, sink, own_redis) as nodes:
        load = Load(nodes)
        await load.run(2)
        own_redis.kill()
        own_redis.restart(empty=True)
        await eventually(all_in(nodes, REFUSED), 15, "every node refused the empty store")
        await load.run(10)
        assert load.refused() == []  # no 554 5.7.1 Relay access denied
        config_path = tmp_path / "n1" / "ugem.toml"
        command = [sys.executable, "-m", "ugem.cli", "--config", str(config_path)]
        done = await asyncio.to_thread(
            subprocess.run,
            [*command, "store", "restore"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        restored = time.monotonic()
        await eventually(all_in(nodes, UP), 15, "every node took the restored store")
        taken = time.monotonic() - restored
        await load.run(1)
        assert load.refused() == []
        await all_arrived(sink, load)
    print(f"\n3 nodes, Redis back empty: 0 refused; all took the restored store in {taken:.2f} s")
