"""Scenario: in shadow mode the detector records what it would have suspended, and acts not.

The same history and burst as in enforce mode (tests.support.burst): every
burst message is accepted, the connection stays connected, nothing is held
and the owner is told nothing; an incident in mode "shadow" is open with the
evidence (`GET /v1/incidents`), the operators' alert ("would have been
suspended", the evidence, the incident) reaches their mail server; the
audit log has the incident's opening and one `anomaly.would_suspend` by
actor "detector" with the reason, a WARNING log line says the same, and the
metrics count it with mode="shadow" (none with mode="enforce").
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from relay.queue.message import QueueState
from tests.support.burst import BURST, BURST_MAX, OPERATORS, OWNER, burst_scene, until
from tests.support.mail import read_notice
from tests.support.node import api_client
from ugem.core.model import ConnState
from ugem.core.services.tokens import Role


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
            found = await audit.list(target=BURST, actor="detector")
            return any(r.entry.action == "anomaly.would_suspend" for r in found)

        await until(recorded, "the would-suspend audited")
        entries = [r.entry for r in await audit.list(target=BURST, actor="detector")]
        assert [e.action for e in entries] == ["anomaly.would_suspend", "incident.open"]
        assert "never seen" in entries[0].reason
        conn = node.registry.get(BURST)
        assert conn is not None and conn.state == ConnState.CONNECTED
        for queue_id in scene.burst_ids:
            msg = await node.spool.get(queue_id, with_data=False)
            assert msg is not None and msg.state != QueueState.HELD

        async with api_client(node, "noc", Role.VIEWER) as api:
            answer = await api.get("/v1/incidents", params={"connection": BURST})
        [incident] = answer.json()["items"]
        assert (incident["id"], incident["state"], incident["mode"], incident["action"]) == (
            1,
            "open",
            "shadow",
            "would-suspend",
        )
        assert incident["reason"] == entries[0].reason
        assert incident["evidence"][0]["numbers"]["messages_5m"] > 0

        [alert] = await scene.notices.wait_for(1, timeout=30)
        assert alert.rcpts == [OPERATORS] and scene.notices_to(OWNER) == []
        text = read_notice(alert.data)
        assert text.subject == f"[UGEM] {BURST} would have been suspended (incident 1)"
        assert "Not suspended: shadow mode" in text.text and entries[0].reason in text.text
        assert "recipient domains in the last 5 min:" in text.text

        sample = node.metrics.registry.get_sample_value
        assert sample("ugem_detector_suspensions_total", {"mode": "shadow"}) == 1
        assert sample("ugem_detector_suspensions_total", {"mode": "enforce"}) == 0
        assert sample("ugem_incidents_opened_total", {"mode": "shadow"}) == 1
        warned = [r for r in caplog.records if r.getMessage() == "anomaly_would_suspend"]
        assert [r.levelno for r in warned] == [logging.WARNING]
