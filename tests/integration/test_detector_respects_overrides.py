"""Scenario: per-connection overrides set through the API change what the detector does.

The same history and burst as in tests.support.burst, in enforce mode. With
a planned mailing's ceiling of `CEILING` messages an hour, the detector's
verdict during the burst is withheld (audited `anomaly.within_ceiling`) and
every message up to the ceiling is accepted; the message that takes the
hour above the ceiling gets the connection suspended, the crossing named in
the reason. With a permanent exemption, the whole burst is accepted and the
connection stays connected, but an incident is open with action "exempted"
and the operators are alerted (the owner is not).
"""

from __future__ import annotations

from pathlib import Path

from relay import replies
from tests.support.burst import BURST, BURST_MAX, OPERATORS, OWNER, BurstScene, burst_scene, until
from tests.support.mail import read_notice
from tests.support.node import api_client
from ugem.core.model import ConnState
from ugem.core.services.tokens import Role

CEILING = 40  # messages an hour: above what the detector lets pass, below BURST_MAX


async def detector_actions(scene: BurstScene) -> list[str]:
    assert scene.node.services is not None
    found = await scene.node.services.audit.list(target=BURST, actor="detector")
    return [r.entry.action for r in found]


async def test_a_burst_below_its_ceiling_passes_and_above_it_is_suspended(
    tmp_path: Path,
) -> None:
    async with burst_scene(tmp_path, "enforce") as scene:
        node = scene.node
        assert node.registry is not None
        await scene.history()
        async with api_client(node, "noc", Role.OPERATOR) as api:
            body = {
                "connection": BURST,
                "kind": "ceiling",
                "reason": "the ministry's planned newsletter",
                "ends_at": scene.clock.now() + 7200,
                "max_messages_per_hour": CEILING,
            }
            made = await api.post("/v1/overrides", json=body)
        assert made.status_code == 201, made.text

        refused = await scene.burst()
        assert refused is not None, "the burst above the ceiling was never refused"
        assert refused.code == replies.SUSPENDED.code
        assert len(scene.burst_ids) > CEILING  # up to the ceiling, nothing was refused
        actions = await detector_actions(scene)
        assert actions[-1] == "anomaly.within_ceiling"  # the first verdict, withheld
        assert actions[:2] == ["connection.suspend", "incident.open"]
        conn = node.registry.get(BURST)
        assert conn is not None and conn.state == ConnState.SUSPENDED
        assert f"above the planned ceiling of {CEILING} messages per hour" in conn.state_reason
        assert f"(override {made.json()['id']})" in conn.state_reason


async def test_an_exempt_server_is_never_suspended_but_its_incident_says_exempted(
    tmp_path: Path,
) -> None:
    async with burst_scene(tmp_path, "enforce") as scene:
        node = scene.node
        assert node.registry is not None
        await scene.history()
        async with api_client(node, "root", Role.ADMIN) as api:
            body = {"connection": BURST, "kind": "exempt", "reason": "agreed", "permanent": True}
            made = await api.post("/v1/overrides", json=body)
            assert made.status_code == 201, made.text

            assert await scene.burst() is None, "an exempt connection was refused"
            assert len(scene.burst_ids) == BURST_MAX

            async def opened() -> bool:
                return "anomaly.exempted" in await detector_actions(scene)

            await until(opened, "the exempted verdict audited")
            found = (await api.get("/v1/incidents", params={"connection": BURST})).json()
            [incident] = found["items"]
        assert (incident["state"], incident["mode"], incident["action"]) == (
            "open",
            "shadow",
            "exempted",
        )
        conn = node.registry.get(BURST)
        assert conn is not None and conn.state == ConnState.CONNECTED
        [alert] = await scene.notices.wait_for(1, timeout=30)
        assert alert.rcpts == [OPERATORS] and scene.notices_to(OWNER) == []
        assert (
            f"Not suspended: exempt: override {made.json()['id']}" in read_notice(alert.data).text
        )
