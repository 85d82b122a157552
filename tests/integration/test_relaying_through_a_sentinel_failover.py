"""Scenario: a node on a Sentinel-managed Redis survives a failover without a refusal.

Against a real Sentinel group (`tests.support.sentinel`: a master, a replica,
3 `redis-sentinel` processes, quorum 2, down-after 1 s), a node whose
`[store] url` is the group's `redis+sentinel://` URL relays mdai.gov.kz's
mail (from 127.0.0.2) to the sink. Under a steady load the master is killed
(SIGKILL); the sentinels promote the replica. Every message of the connected
server gets 250 throughout (the registry's copy serves while no master
answers: fail-static), every one arrives, the node takes the store back on
the new master (`node.registry.watch`, `/readyz` "ready"), and the shared
traffic stream goes on there: an accepted event appended after the failover
is read back through the same URL. The times to notice the outage and to
recover are printed.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from tests.support.clients import Sent
from tests.support.node import node_relaying_to, running_node, send_mail
from tests.support.sentinel import SentinelGroup
from tests.support.sink import Sink
from tests.support.waiting import eventually, eventually_read
from ugem.core.config import Config
from ugem.core.registry_watch import UP
from ugem.core.store.traffic import TrafficLog, open_traffic_log
from ugem.node import Node

pytestmark = pytest.mark.slow

SERVER = "127.0.0.2"


class Load:
    """Messages from the connected server, one session at a time, until stopped."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.sent: list[Sent] = []
        self.running = True

    async def run(self) -> None:
        while self.running:
            number = len(self.sent)
            sent = await send_mail(
                self.config, "a@mdai.gov.kz", ["x@example.org"], SERVER, f"m{number}"
            )
            self.sent.append(sent)

    def refused(self) -> list[Sent]:
        return [s for s in self.sent if s.code != 250]


def state(node: Node) -> str:
    assert node.registry is not None
    return node.registry.watch.state


async def ready_status(config: Config) -> str:
    async with httpx.AsyncClient(base_url=f"http://{config.admin.listen}") as http:
        return str((await http.get("/readyz")).json()["status"])


async def accepted_after(log: TrafficLog, cursor: str) -> list[str]:
    """The accepted events of the traffic stream after `cursor`."""
    _, records = await log.read(cursor, wait=0.2)
    return [r for r in records if json.loads(r).get("event") == "accepted"]


async def test_a_sentinel_failover_refuses_no_message_of_a_connected_server(
    tmp_path: Path, sink: Sink, sentinel_group: SentinelGroup
) -> None:
    config, _ = await node_relaying_to(tmp_path, sink, store={"url": sentinel_group.url})
    async with running_node(config) as node:
        load = Load(config)
        task = asyncio.create_task(load.run())
        await eventually(lambda: len(load.sent) >= 5, 30, "mail relayed before the failover")
        await asyncio.to_thread(sentinel_group.sync_replica)
        sentinel_group.kill_master()
        killed = time.monotonic()
        await eventually(lambda: state(node) != UP, 15, "the dead master noticed")
        noticed = time.monotonic() - killed
        await eventually(
            lambda: sentinel_group.master_port() == sentinel_group.replica.port,
            30,
            "the replica promoted",
        )
        promoted = time.monotonic() - killed
        await eventually(lambda: state(node) == UP, 30, "the store taken back on the new master")
        recovered = time.monotonic() - killed
        sent_in_gap = len(load.sent)
        await eventually(lambda: len(load.sent) >= sent_in_gap + 5, 30, "mail after it")
        load.running = False
        await task
        assert load.refused() == [], load.refused()
        assert await ready_status(config) == "ready"
        await sink.wait_until(lambda: len(sink.messages) >= len(load.sent), 30, "every message")

        log = open_traffic_log(sentinel_group.url)
        try:
            cursor = await log.tail()
            assert (await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], SERVER)).ok
            await eventually_read(
                lambda: accepted_after(log, cursor), bool, 15, "an accepted event after it"
            )
        finally:
            await log.close()
    print(
        f"\nsentinel failover: {len(load.sent)} messages, {len(load.refused())} refused; "
        f"outage noticed {noticed:.2f} s after SIGKILL, replica promoted {promoted:.2f} s, "
        f"store back on the new master {recovered:.2f} s"
    )
