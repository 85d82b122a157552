"""Scenario: in shadow mode the detector records what it would have suspended, and acts not.

The same history and burst as in enforce mode (tests.support.burst): every
burst message is accepted, the connection stays connected, nothing is held
and no notice is sent; the audit log has one `anomaly.would_suspend` by actor
"detector" with the reason, a WARNING log line says the same, and the metric
counts it with mode="shadow" (none with mode="enforce").
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from relay.message import QueueState
from tests.support.burst import BURST, BURST_MAX, burst_scene, until
from ugem.model import ConnState


async def test_shadow_mode_suspends_nothing_and_records_the_verdict(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="anomaly.enforce")
    async with burst_scene(tmp_path, "shadow") as scene:
        node = scene.node
        assert node.spool is not None and node.services is not None and node.registry is not None
        audit = node.services.audit
        await scene.history()

        assert await scene.burst() is None, "shadow mode refused mail"
        assert len(scene.burst_ids) == BURST_MAX

        async def recorded() -> bool:
            return bool(await audit.list(target=BURST, actor="detector"))

        await until(recorded, "the would-suspend audited")
        entries = [r.entry for r in await audit.list(target=BURST, actor="detector")]
        assert [e.action for e in entries] == ["anomaly.would_suspend"]
        assert "never seen" in entries[0].reason
        conn = node.registry.get(BURST)
        assert conn is not None and conn.state == ConnState.CONNECTED
        for queue_id in scene.burst_ids:
            msg = await node.spool.get(queue_id, with_data=False)
            assert msg is not None and msg.state != QueueState.HELD
        assert not scene.notices.messages

        sample = node.metrics.registry.get_sample_value
        assert sample("ugem_detector_suspensions_total", {"mode": "shadow"}) == 1
        assert sample("ugem_detector_suspensions_total", {"mode": "enforce"}) is None
        warned = [r for r in caplog.records if r.getMessage() == "anomaly_would_suspend"]
        assert [r.levelno for r in warned] == [logging.WARNING]
