"""Scenario: the detector throttles a server whose traffic turns abnormal, before it suspends it.

The history of tests.support.burst (one message an hour for a day, to one
recipient), then, a few seconds of fake time apart, messages of `BATCH`
recipients never mailed before: their volume and novelty score at the
throttle threshold (the node's detector gets explicit `THRESHOLDS`, so the
scenario does not hang on tuned constants). Throttled, the server's MAIL
FROM gets `replies.THROTTLED` (451 4.7.1) while its recipients of the last 5
minutes reach the cap (the floor: it usually sends one an hour), and its mail
under the cap is still accepted.

- throttle, then suspend: its mail then bounces as unknown users (550 at the
  next hop), which corroborates the score up to a suspension
  (`replies.SUSPENDED`); the incident holds the throttle, then the
  suspension, and is now of action "suspended"; the audit log, the metrics
  and `/v1/connections` say the same.
- throttle, then lift: it sends nothing abnormal any more; `LIFT_S` of event
  time after the check that throttled it (not a second earlier) its next
  message lifts the throttle: the incident records the lift, and the mail
  the throttle refused is accepted.

Nothing sleeps to let time pass: the fake clock moves, and the test waits
until the node's detector (`Judged`) has judged each message before it
sends the next.
"""

from __future__ import annotations

from pathlib import Path

from anomaly.detector import LIFT_S, SUSPEND, THROTTLE, Detector, Thresholds, Verdict
from anomaly.trace_reader import BOUNCED
from relay import replies
from relay.replies import Reply
from tests.support.burst import BURST, HISTORY_HOURS, BurstScene, burst_scene, until
from tests.support.clients import Sent
from tests.support.node import api_client
from ugem.core.model import ConnState
from ugem.core.services.incidents import CAP, Incident
from ugem.core.services.tokens import Role
from ugem.core.throttle import THROTTLE_FLOOR
from ugem.node import Node

THRESHOLDS = Thresholds(throttle=3.0, suspend=8.0, corroborated=2.0)
BATCH = 5  # recipients a message
SENDER = f"news@{BURST}"  # its usual sender: nothing but the recipients is new
STEP_S = 5.0  # fake seconds between messages
WINDOW_S = 300.0  # the 5 minutes the cap is counted over
MOST = 30  # messages a phase may take before the test gives up
NO_SUCH_USER = "550 5.1.1 No such user"


def wire(reply: Reply) -> tuple[int, str]:
    """(code, text) as smtplib gives a reply."""
    return reply.code, f"{reply.status} {reply.text}"


class Judged(Detector):
    """The node's detector on THRESHOLDS, counting the events of BURST it has judged, so a
    test can wait for it."""

    def __init__(self) -> None:
        super().__init__(keep_counting=True, thresholds=THRESHOLDS)
        self.messages = self.bounced = 0
        self.verdicts: list[str] = []  # the actions of its verdicts about BURST

    def accepted(
        self,
        ts: float,
        connection: str,
        sender: str,
        rcpts: list[str],
        ip: str = "",
        size: int = 0,
    ) -> Verdict | None:
        self.messages += connection == BURST
        return self._seen(super().accepted(ts, connection, sender, rcpts, ip, size))

    def outcome(
        self, ts: float, connection: str, kind: int, code: int, rcpt: str = ""
    ) -> Verdict | None:
        self.bounced += connection == BURST and kind == BOUNCED
        return self._seen(super().outcome(ts, connection, kind, code, rcpt))

    def _seen(self, verdict: Verdict | None) -> Verdict | None:
        if verdict is not None and verdict.connection == BURST:
            self.verdicts.append(verdict.action)
        return verdict

    async def upto(self, messages: int, bounced: int = 0) -> None:
        """Until it judged `messages` of BURST and `bounced` bounces (or suspended it: then
        its mail is held, not bounced)."""

        async def judged() -> bool:
            bounces = self.bounced >= bounced or SUSPEND in self.verdicts
            return self.messages >= messages and bounces

        await until(judged, f"{messages} messages and {bounced} bounces judged")


class Throttling:
    """The scene, its node's enforcer on THRESHOLDS, and the counts to wait on."""

    def __init__(self, scene: BurstScene) -> None:
        self.scene, self.node = scene, scene.node
        assert self.node.enforcer is not None
        self.enforcer = self.node.enforcer
        self.judged = self.enforcer.detector = Judged()  # before any traffic: nothing learned
        self.sent = 0  # messages of BURST accepted
        self.new = 0  # recipients never mailed before, so far
        scene.remote.data_replies = []  # the next hop takes the mail, but for unknown users
        scene.remote.rcpt_reply = lambda rcpt: NO_SUCH_USER if rcpt.startswith("nouser") else None

    def fresh(self, n: int, prefix: str = "c") -> list[str]:
        """`n` recipients never mailed before, at the next hop `remote`."""
        rcpts = [f"{prefix}{self.new + i}@d{(self.new + i) % 50}.example.net" for i in range(n)]
        self.new += n
        return rcpts

    async def send(self, rcpts: list[str], bounces: int = 0, then: float = STEP_S) -> Sent:
        """One message; once accepted, the detector has judged it (and its `bounces`); the
        clock moves on by `then`."""
        bounced = self.judged.bounced + bounces  # counted before: it may bounce at once
        sent = await self.scene.send(BURST, SENDER, rcpts, f"m{self.sent}")
        if sent.ok:
            self.sent += 1
            await self.judged.upto(self.sent, bounced)
        self.scene.clock.advance(then)
        return sent

    async def history(self) -> None:
        await self.scene.history()
        self.sent += HISTORY_HOURS
        await self.judged.upto(self.sent)

    async def until_throttled(self) -> None:
        """New recipients, a message at a time, until the detector throttles the server."""
        for _ in range(MOST):
            assert (await self.send(self.fresh(BATCH))).ok
            if self.judged.throttled(BURST):
                break
        else:
            raise AssertionError("the detector never throttled the server")

        async def on_board() -> bool:
            return self.node.throttle.throttled(BURST)

        await until(on_board, "the throttle on the node's board")

    async def incident(self) -> Incident:
        assert self.node.services is not None
        [incident] = await self.node.services.incidents.list(connection=BURST)
        return incident

    def state(self) -> ConnState:
        assert self.node.registry is not None
        conn = self.node.registry.get(BURST)
        assert conn is not None
        return conn.state


async def detector_actions(node: Node) -> list[str]:
    assert node.services is not None
    found = await node.services.audit.list(target=BURST, actor="detector")
    return [r.entry.action for r in reversed(found)]  # oldest first


def sample(node: Node, name: str, labels: dict[str, str] | None = None) -> float | None:
    return node.metrics.registry.get_sample_value(name, labels or {})


async def test_a_throttled_server_keeps_its_usual_rate_then_is_suspended(
    tmp_path: Path,
) -> None:
    async with burst_scene(tmp_path, "enforce") as scene:
        t = Throttling(scene)
        await t.history()
        node = t.node
        await t.until_throttled()
        throttled = await t.incident()
        assert [e.action.value for e in throttled.evidence] == ["throttled"]
        assert throttled.evidence[0].numbers[CAP] == THROTTLE_FLOOR  # it usually sends 1 an hour
        assert await t.send(t.fresh(BATCH)) == Sent(*wire(replies.THROTTLED))
        assert t.state() == ConnState.CONNECTED

        scene.clock.advance(WINDOW_S)  # its last 5 minutes are empty: under the cap again
        under = [await t.send(t.fresh(BATCH)) for _ in range(int(THROTTLE_FLOOR) // BATCH)]
        assert all(sent.ok for sent in under), under
        assert await t.send(t.fresh(BATCH)) == Sent(*wire(replies.THROTTLED))  # at the cap
        async with api_client(node, "noc", Role.VIEWER) as api:
            shown = (await api.get(f"/v1/connections/{BURST}")).json()
        assert (shown["state"], shown["throttled"]) == ("connected", True)

        scene.clock.advance(WINDOW_S)
        for _ in range(MOST):  # now its mail bounces: unknown users, under the cap
            assert (await t.send(t.fresh(1, "nouser"), bounces=1)).ok
            if SUSPEND in t.judged.verdicts:
                break
        else:
            raise AssertionError("the detector never suspended the server")
        assert t.judged.verdicts == [THROTTLE, SUSPEND]

        async def suspended() -> bool:  # and counted: the enforcer is done with it
            counted = sample(node, "ugem_detector_suspensions_total", {"mode": "enforce"})
            return t.state() == ConnState.SUSPENDED and counted == 1

        await until(suspended, "the suspension")
        again = await scene.send(BURST, SENDER, ["x@example.org"], "after")
        assert again == Sent(*wire(replies.SUSPENDED))

        incident = await t.incident()
        assert [e.action.value for e in incident.evidence] == ["throttled", "suspended"]
        assert (incident.mode.value, incident.action.value) == ("enforce", "suspended")
        assert any("unknown users" in f for f in incident.evidence[1].findings)
        assert await detector_actions(node) == [
            "incident.open",
            "anomaly.throttled",
            "connection.suspend",
        ]
        assert not node.throttle.throttled(BURST)  # suspended: the throttle is over
        assert sample(node, "ugem_detector_throttles_total", {"mode": "enforce"}) == 1
        assert sample(node, "ugem_throttled_connections") == 0
        assert sample(node, "ugem_incidents_opened_total", {"mode": "enforce"}) == 1
        async with api_client(node, "noc-after", Role.VIEWER) as api:
            found = (await api.get("/v1/incidents", params={"connection": BURST})).json()
            [shown] = found["items"]
        assert [e["action"] for e in shown["evidence"]] == ["throttled", "suspended"]


async def test_a_throttle_lifts_once_the_traffic_is_normal_for_lift_s(
    tmp_path: Path,
) -> None:
    async with burst_scene(tmp_path, "enforce") as scene:
        t = Throttling(scene)
        await t.history()
        node = t.node
        known = t.fresh(BATCH)  # the first message's recipients: known from then on
        assert (await t.send(known)).ok
        await t.until_throttled()
        throttled_at = (await t.incident()).evidence[0].ts
        assert await t.send(known) == Sent(*wire(replies.THROTTLED))
        assert sample(node, "ugem_throttled_connections") == 1

        usual = ["x@example.org"]  # back to normal: one message to its usual recipient
        scene.clock.advance(throttled_at + LIFT_S - 1 - scene.clock.now())
        assert (await t.send(usual, then=1.0)).ok  # under the cap, still throttled
        assert node.throttle.throttled(BURST)
        assert scene.clock.now() == throttled_at + LIFT_S
        assert (await t.send(usual)).ok  # LIFT_S after the check that throttled it

        async def lifted() -> bool:
            return "anomaly.throttle_lifted" in await detector_actions(node)

        await until(lifted, "the lift recorded")
        assert not node.throttle.throttled(BURST)
        incident = await t.incident()
        assert [e.action.value for e in incident.evidence] == ["throttled", "throttle-lifted"]
        assert incident.action.value == "throttled" and incident.state.value == "open"
        assert sample(node, "ugem_throttled_connections") == 0

        # What the throttle refused is accepted: past the cap, to recipients it knows.
        burst = [await t.send(known) for _ in range(int(THROTTLE_FLOOR) // BATCH + 2)]
        assert all(sent.ok for sent in burst), burst
        assert not node.throttle.throttled(BURST)
        assert t.state() == ConnState.CONNECTED
        async with api_client(node, "noc-after", Role.VIEWER) as api:
            shown = (await api.get(f"/v1/connections/{BURST}")).json()
            found = (await api.get("/v1/incidents", params={"connection": BURST})).json()
            [listed] = found["items"]
        assert shown["throttled"] is False
        assert [e["action"] for e in listed["evidence"]] == ["throttled", "throttle-lifted"]
