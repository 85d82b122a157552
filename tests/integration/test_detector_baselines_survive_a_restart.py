"""Scenario: what the detector learned of a connection survives the node's restart.

`burst.gov.kz` sends its steady day of history through a node, which then
stops (and writes the detector's baselines to its store). A node started
again on the same store knows that traffic from its first message on: the
baseline is warm (a day and more of history), where a fresh detector would
still be in its cautious warm-up.
"""

from __future__ import annotations

from pathlib import Path

from anomaly.enforce import BASELINE_DOC
from tests.support.burst import BURST, burst_scene, until
from tests.support.node import running_node, send_mail
from ugem.core.store import open_store


async def test_a_restarted_node_takes_up_the_baselines_it_learned(tmp_path: Path) -> None:
    async with burst_scene(tmp_path, "shadow") as scene:
        await scene.history()

        async def judged_all() -> bool:  # a stop saves what the detector has judged so far
            metrics = scene.node.metrics.registry
            judged = metrics.get_sample_value("ugem_detector_events_total") or 0
            return judged >= 2 * scene.sends  # each message: accepted, then delivered

        await until(judged_all, "the detector judged the whole history")
    store = open_store(scene.config.store_url)
    try:
        kept = dict(await store.doc_list(BASELINE_DOC))
    finally:
        await store.close()
    assert BURST in kept

    async with running_node(scene.config, scene.clock) as node:
        enforcer = node.enforcer
        assert enforcer is not None
        sent = await send_mail(scene.config, f"news@{BURST}", ["x@example.org"], "127.0.0.2", "a")
        assert sent.ok, sent

        async def seen() -> bool:
            return enforcer.detector.traffic(BURST) is not None

        await until(seen, "the detector saw the message")
        traffic = enforcer.detector.traffic(BURST)
        assert traffic is not None
        mean, _, warm = traffic[1].expected(scene.clock.now())
        assert warm and mean > 0
