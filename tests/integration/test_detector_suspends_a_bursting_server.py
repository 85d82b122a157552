"""Scenario: the anomaly detector, in enforce mode, suspends a server that bursts.

`burst.gov.kz` sends one message an hour for a day (its normal), then bursts
from ever new senders to many recipient domains, a message every two seconds
of fake time. The detector suspends it within the burst's first minute: the
next MAIL FROM gets `replies.SUSPENDED` (451 4.7.1), the burst's queued mail
(deferred by the remote side) is held, the owner's notice reaches its
contact's mail server and the operators' alert theirs, both naming the
incident, which `GET /v1/incidents` shows open with the evidence (the
detector's findings and the numbers behind them); the audit log has the
suspension with actor "detector", and the suspension and the incident are
counted. `other.gov.kz` keeps relaying before, during and after.
"""

from __future__ import annotations

from pathlib import Path

from relay import replies
from relay.queue.message import QueueState
from tests.support.burst import BURST, HISTORY_HOURS, OPERATORS, OWNER, burst_scene, until
from tests.support.mail import read_notice
from tests.support.node import api_client
from ugem.core.model import ConnState
from ugem.core.services.tokens import Role

DETECT_WITHIN = 30  # burst messages (a minute of fake time)


async def test_a_bursting_server_is_suspended_held_notified_and_audited(tmp_path: Path) -> None:
    async with burst_scene(tmp_path, "enforce") as scene:
        node = scene.node
        assert node.spool is not None and node.services is not None and node.registry is not None
        await scene.history()
        await scene.other()

        refused = await scene.burst()
        assert refused is not None, "the burst was never refused"
        assert len(scene.burst_ids) <= DETECT_WITHIN, len(scene.burst_ids)
        again = await scene.send(BURST, f"news@{BURST}", ["x@example.org"], "after")
        for sent in (refused, again):
            assert (sent.code, sent.text.split(" ", 1)[0]) == (
                replies.SUSPENDED.code,
                replies.SUSPENDED.status,
            )
        conn = node.registry.get(BURST)
        assert conn is not None and conn.state == ConnState.SUSPENDED
        assert "abnormal traffic" in conn.state_reason and "never seen" in conn.state_reason

        spool = node.spool

        async def all_held() -> bool:
            msgs = [await spool.get(queue_id, with_data=False) for queue_id in scene.burst_ids]
            return all(m is not None and m.state == QueueState.HELD for m in msgs)

        await until(all_held, "the burst's queued mail held")

        await scene.notices.wait_for(2, timeout=30)
        [notice], [alert] = scene.notices_to(OWNER), scene.notices_to(OPERATORS)
        assert "abnormal traffic" in read_notice(notice.data).text
        assert "(incident 1)" in read_notice(notice.data).text
        assert f"{BURST} suspended by detector" in read_notice(alert.data).subject
        assert "(incident 1)" in read_notice(alert.data).text

        async with api_client(node, "noc", Role.VIEWER) as api:
            answer = await api.get("/v1/incidents", params={"state": "open"})
        assert answer.status_code == 200, answer.text
        [incident] = answer.json()["items"]
        assert (incident["id"], incident["connection"], incident["mode"]) == (1, BURST, "enforce")
        assert incident["action"] == "suspended"
        [evidence] = incident["evidence"]
        assert any("never seen" in finding for finding in evidence["findings"])
        numbers = evidence["numbers"]  # at the verdict: the burst so far, 3 domains a message
        assert 0 < numbers["messages_5m"] <= len(scene.burst_ids)
        assert numbers["recipient_domains_5m"] == 3 * numbers["messages_5m"]
        assert numbers["baseline_warm"] == 1

        records = await node.services.audit.list(target=BURST)
        entries = [r.entry for r in records]
        suspensions = [(e.actor, e.reason) for e in entries if e.action == "connection.suspend"]
        assert suspensions == [("detector", conn.state_reason)]
        counted = node.metrics.registry.get_sample_value(
            "ugem_detector_suspensions_total", {"mode": "enforce"}
        )
        assert counted == 1
        opened = node.metrics.registry.get_sample_value(
            "ugem_incidents_opened_total", {"mode": "enforce"}
        )
        assert opened == 1

        await scene.other()  # the other connection still relays
        await scene.delivered.wait_for(HISTORY_HOURS + scene.other_sent, timeout=30)
        assert not scene.remote.messages  # the burst never got out
