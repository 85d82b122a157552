"""Scenario: two nodes on one Redis; the store dies; a connection bursts; it is stopped at once.

`burst.gov.kz` sends its day of history through two nodes on one redis-server
of the test's own (`tests.support.redis_outage`), which both detectors judge
through the shared traffic log. Then Redis is killed and the burst comes,
to each node in turn. Neither node can share its traffic, claim a verdict or
write a suspension, yet the burst is refused (451 4.7.1) by a node that
judged its own share of it and suspended the connection in itself alone
(`Registry.hold_locally`), with no ERROR logged. When Redis comes back with
its data, the verdict is recorded once: the store says suspended (actor
"detector"), there is one incident and the owner gets one notice, and both
nodes refuse the connection (each node's registry follows the store within a
few sync intervals, with no traffic).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from relay import replies
from tests.support.burst import BURST, OWNER, burst_scene, until
from tests.support.redis_outage import OwnRedis
from ugem.core.model import ConnState
from ugem.core.registry_watch import UNREACHABLE, UP
from ugem.node import Node

pytestmark = pytest.mark.slow


def judged(node: Node) -> float:
    return node.metrics.registry.get_sample_value("ugem_detector_events_total") or 0.0


def store_state(node: Node) -> str:
    assert node.registry is not None
    return node.registry.watch.state


async def test_a_burst_during_a_store_outage_is_refused_and_recorded_once_when_it_returns(
    tmp_path: Path, own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    async with burst_scene(tmp_path, "enforce", nodes=2, store_url=own_redis.url) as scene:
        a, b = scene.nodes
        await scene.history()
        sent = scene.sends
        await until(lambda: _async(min(judged(a), judged(b)) >= sent), "the history judged")

        own_redis.kill()
        await until(
            lambda: _async(store_state(a) == store_state(b) == UNREACHABLE), "the outage noticed"
        )
        refused = await scene.burst()
        assert refused is not None, "the burst was never refused during the outage"
        assert (refused.code, refused.text.split(" ", 1)[0]) == (
            replies.SUSPENDED.code,
            replies.SUSPENDED.status,
        )
        holding = [n for n in scene.nodes if n.registry and n.registry.held_locally(BURST)]
        assert holding, "no node holds the connection"
        assert scene.notices_to(OWNER) == []  # nothing recorded, nobody told yet

        own_redis.restart()
        await until(lambda: _async(store_state(a) == store_state(b) == UP), "the store back")
        services = a.services
        assert services is not None

        async def recorded() -> bool:
            conn = await services.connections.get(BURST)
            return conn.state == ConnState.SUSPENDED and not any(
                n.registry and n.registry.held_locally(BURST) for n in scene.nodes
            )

        await until(recorded, "the suspension recorded in the store")
        assert len(await services.incidents.list(connection=BURST)) == 1
        suspended = await services.audit.list(target=BURST, action="connection.suspend")
        assert [r.entry.actor for r in suspended] == ["detector"]
        await scene.notices.wait_for(1, timeout=30)
        assert len(scene.notices_to(OWNER)) == 1

        async def every_node_refuses() -> bool:
            views = [n.registry.get(BURST) if n.registry else None for n in scene.nodes]
            return all(v is not None and v.state == ConnState.SUSPENDED for v in views)

        await until(every_node_refuses, "every node's registry suspended")
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    assert "anomaly_suspended_locally" in [r.getMessage() for r in caplog.records]


async def _async(value: bool) -> bool:
    return value
