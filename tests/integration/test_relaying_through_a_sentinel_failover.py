"""Scenario: two nodes on a Sentinel-managed Redis survive a failover without a refusal.

Against a real Sentinel group (`tests.support.sentinel`: a master, a replica,
3 `redis-sentinel` processes, quorum 2, down-after 1 s), two nodes whose
`[store] url` is the group's `redis+sentinel://` URL relay mdai.gov.kz's
mail (from 127.0.0.2) to the sink, a steady load through each. The master is
killed (SIGKILL); the sentinels promote the replica. Every message of the
connected server gets 250 from both nodes throughout (the registry's copy
serves while no master answers: fail-static), every one arrives, both nodes
take the store back on the new master (`node.registry.watch`, `/readyz`
"ready"), and the shared traffic stream goes on there: an accepted event
appended after the failover is read back through the same URL. The times to
notice the outage and to recover are printed.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from tests.support.clients import Sent
from tests.support.node import connect, node_config, running_node, send_mail
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


def states(nodes: list[Node]) -> set[str]:
    return {n.registry.watch.state for n in nodes if n.registry is not None}


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
    routes = {"routes": {"example.org": f"{sink.host}:{sink.port}"}}
    configs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        configs.append(
            node_config(tmp_path / name, store={"url": sentinel_group.url}, delivery=routes)[0]
        )
    await connect(configs[0], "mdai.gov.kz", [SERVER])
    async with running_node(configs[0]) as a, running_node(configs[1]) as b:
        nodes = [a, b]
        loads = [Load(c) for c in configs]
        tasks = [asyncio.create_task(load.run()) for load in loads]
        await eventually(lambda: min(len(x.sent) for x in loads) >= 5, 30, "mail before it")
        await asyncio.to_thread(sentinel_group.sync_replica)
        sentinel_group.kill_master()
        killed = time.monotonic()
        await eventually(lambda: UP not in states(nodes), 15, "the dead master noticed")
        noticed = time.monotonic() - killed
        await eventually(
            lambda: sentinel_group.master_port() == sentinel_group.replica.port,
            30,
            "the replica promoted",
        )
        promoted = time.monotonic() - killed
        await eventually(lambda: states(nodes) == {UP}, 30, "the store back on the new master")
        recovered = time.monotonic() - killed
        sent_in_gap = [len(x.sent) for x in loads]
        await eventually(
            lambda: all(len(x.sent) >= n + 5 for x, n in zip(loads, sent_in_gap, strict=True)),
            30,
            "mail through both after it",
        )
        for load in loads:
            load.running = False
        await asyncio.gather(*tasks)
        refused = [s for load in loads for s in load.refused()]
        total = sum(len(load.sent) for load in loads)
        assert refused == [], refused
        assert [await ready_status(c) for c in configs] == ["ready", "ready"]
        await sink.wait_until(lambda: len(sink.messages) >= total, 30, "every message")

        log = open_traffic_log(sentinel_group.url)
        try:
            cursor = await log.tail()
            assert (await send_mail(configs[1], "a@mdai.gov.kz", ["x@example.org"], SERVER)).ok
            await eventually_read(
                lambda: accepted_after(log, cursor), bool, 15, "an accepted event after it"
            )
        finally:
            await log.close()
    print(
        f"\nsentinel failover, 2 nodes: {total} messages, {len(refused)} refused; outage "
        f"noticed {noticed:.2f} s after SIGKILL, replica promoted {promoted:.2f} s, store back "
        f"on the new master {recovered:.2f} s"
    )
