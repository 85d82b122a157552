"""Scenario: two nodes on one Redis store; the detector judges the connection's whole traffic.

`burst.gov.kz` sends its day of history and then its burst to two nodes in
turn, so each node accepts only half of it. With the shared traffic log
(`[anomaly] shared_traffic = "auto"`: on, as the store is Redis) each node's
detector judges every message of both: both count the same events, and the
connection is suspended once, with one incident and one owner's notice,
though both detectors reach the verdict.
"""

from __future__ import annotations

from pathlib import Path

from relay import replies
from tests.support.burst import BURST, OWNER, burst_scene, until
from ugem.core.model import ConnState
from ugem.node import Node


def judged(node: Node) -> float:
    """How many traffic events `node`'s detector judged."""
    return node.metrics.registry.get_sample_value("ugem_detector_events_total") or 0.0


async def test_two_nodes_judge_one_connections_whole_traffic_and_act_once(
    tmp_path: Path, redis_url: str
) -> None:
    async with burst_scene(tmp_path, "enforce", nodes=2, store_url=redis_url) as scene:
        a, b = scene.nodes
        assert a.config.shares_traffic and b.config.shares_traffic
        await scene.history()
        accepted = scene.sends
        await until(
            lambda: _async(judged(a) >= accepted and judged(b) >= accepted),
            "both detectors saw the whole history",
        )
        refused = await scene.burst()
        assert refused is not None, "the burst was never refused"
        assert (refused.code, refused.text.split(" ", 1)[0]) == (
            replies.SUSPENDED.code,
            replies.SUSPENDED.status,
        )
        services = a.services
        assert services is not None
        conn = await services.connections.get(BURST)
        assert conn.state == ConnState.SUSPENDED
        incidents = await services.incidents.list(connection=BURST)
        assert len(incidents) == 1, incidents
        suspended = await services.audit.list(target=BURST, action="connection.suspend")
        assert [r.entry.actor for r in suspended] == ["detector"]
        await until(lambda: _async(judged(a) == judged(b)), "both judged the same events")
        await scene.notices.wait_for(1, timeout=30)
        assert len(scene.notices_to(OWNER)) == 1


async def _async(value: bool) -> bool:
    return value
