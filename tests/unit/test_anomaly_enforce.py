"""The enforcer's rules over a real SQLite store: what a verdict does in each mode and override.

Enforce mode opens an incident with the evidence (the reason and the numbers
of the connection's traffic) and suspends with actor "detector" once, the
incident named in the reason; the owner's notice and the operators' alert
go out. A second verdict about a connection that is suspended already
changes and counts nothing; after a resume it is watched afresh and its next
verdict joins the incident still open. Shadow mode suspends nothing, opens
a shadow incident, audits `anomaly.would_suspend`, alerts the operators
(never the owner) once per incident, and watches the connection again only
an hour of event time later. A planned mailing's ceiling withholds a
verdict while the last hour's traffic is below it and releases it the
moment the traffic crosses it; an exemption is never suspended, its incident
says "exempted". A failed action (the store unreachable) is logged and the
next verdict acts. Inbound mail (no connection) is not watched.

A THROTTLE in enforce mode puts the connection on the throttle board with
the cap of its baseline, which refuses it only while its last 5 minutes
reach the cap (and until they would fall below it), records an incident
"throttled" with the cap, audits, logs and counts it, and mails no one; a
LIFT takes it off and is added to the incident (never opening one); a
SUSPEND after it ends it and joins the incident, which becomes "suspended".
Shadow mode and an exemption never put it on the board; a ceiling withholds
a throttle as it does a suspension. When another process claims the
throttle, this one still throttles (each relays on its own board) but
records nothing. A suspension by an operator ends the throttle too.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from anomaly.baseline import Baseline
from anomaly.cited import MAX_CONNECTIONS, MOST_LISTS, PER_CONNECTION, Cited
from anomaly.detector import Detector, Verdict
from anomaly.enforce import (
    BASELINE_DOC,
    EXEMPTED,
    SHADOW_REARM_S,
    THROTTLE_LIFTED,
    THROTTLED,
    WITHHELD_S,
    WITHIN_CEILING,
    WOULD_SUSPEND,
    WOULD_THROTTLE,
    Enforcer,
    measure,
    over_until,
)
from anomaly.features import Features
from anomaly.feed import LocalFeed
from tests.support.admin import NOTICES, OPERATORS, ListOutbox
from tests.support.burst import until
from tests.support.mail import read_notice
from ugem.core.clock import FakeClock
from ugem.core.errors import ConfigError, StoreError
from ugem.core.events import Accepted, Complained, EventBus, Outcome
from ugem.core.metrics import Metrics
from ugem.core.model import Connection, ConnState, Contact, OrgKind
from ugem.core.registry import Registry
from ugem.core.services.audit import AuditLog
from ugem.core.services.connections import ConnectionService
from ugem.core.services.incidents import CAP, NUMBERS, Action, Incident, IncidentState, Mode
from ugem.core.services.notices import Notifier
from ugem.core.services.overrides import Override, OverrideKind, OverrideRequest, OverrideService
from ugem.core.store import open_store
from ugem.core.throttle import THROTTLE_FLOOR

CONN = "akimat.gov.kz"
OWNER = f"it@{CONN}"
REASON = "412 recipients in 5 min against a usual 9 ± 4; 31 % bounced as unknown recipients"


class SpyDetector(Detector):
    """The real detector as a node runs it, recording which connections it was told to watch
    afresh."""

    def __init__(self) -> None:
        super().__init__(keep_counting=True)
        self.resumed: list[str] = []

    def resume(self, connection: str) -> None:
        self.resumed.append(connection)
        super().resume(connection)


@dataclass
class Scene:
    service: ConnectionService
    metrics: Metrics
    detector: SpyDetector
    outbox: ListOutbox
    clock: FakeClock

    def enforcer(self, mode: str) -> Enforcer:
        return Enforcer(mode, EventBus(), self.service, self.metrics, self.detector)

    def sample(self, name: str, mode: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, {"mode": mode})

    async def actions(self) -> list[tuple[str, str]]:
        return [(r.entry.actor, r.entry.action) for r in await self.service.audit.list(CONN)]

    def mailed(self) -> list[tuple[tuple[str, ...], str]]:
        """(recipients, text) of every notice and alert queued."""
        return [(m.rcpts, read_notice(m.data).text) for m in self.outbox.sent]


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    store, clock = open_store(f"sqlite:///{tmp_path / 'u.db'}"), FakeClock()
    conn = Connection(
        CONN, "Akimat", OrgKind.LOCAL_GOVERNMENT, (CONN,), ("127.0.0.2",), (Contact("A", OWNER),)
    )
    try:
        await store.add(conn)
        registry = Registry(store, clock)
        await registry.sync()
        audit, outbox = AuditLog(store, clock), ListOutbox()
        notifier = Notifier(outbox, audit, clock, NOTICES)
        service = ConnectionService(store, registry, audit, clock, notifier)
        yield Scene(service, Metrics(), SpyDetector(), outbox, clock)
    finally:
        await store.close()


def verdict(ts: float, reason: str = REASON) -> Verdict:
    return Verdict(ts, CONN, "suspend", reason)


def accepted(ts: float, rcpts: int = 3, connection: str = CONN) -> Accepted:
    to = tuple(f"r{i}@d{i}.example.org" for i in range(rcpts))
    return Accepted(ts, "q1", connection, "127.0.0.2", f"a@{CONN}", to, 10)


async def incidents(scene: Scene, enforcer: Enforcer) -> list[Incident]:
    return await enforcer.incidents.list(connection=CONN)


async def test_enforce_opens_an_incident_suspends_once_and_watches_a_resumed_connection(
    scene: Scene,
) -> None:
    enforcer = scene.enforcer("enforce")
    await enforcer.start()
    try:
        now = scene.clock.now()
        for i in range(4):
            assert enforcer.observe(accepted(now + i)) is None
        await enforcer.act(verdict(now + 3))
        await enforcer.act(verdict(now + 4))  # suspended already: not again
        conn = scene.service.registry.get(CONN)
        assert conn is not None and conn.state == ConnState.SUSPENDED
        assert conn.state_reason == f"abnormal traffic: {REASON} (incident 1)"
        assert await scene.actions() == [
            ("detector", "connection.suspend"),
            ("detector", "incident.open"),
        ]
        [incident] = await incidents(scene, enforcer)
        assert (incident.mode, incident.action, incident.state) == (
            Mode.ENFORCE,
            Action.SUSPENDED,
            IncidentState.OPEN,
        )
        first = incident.evidence[0]
        assert first.findings == (
            "412 recipients in 5 min against a usual 9 ± 4",
            "31 % bounced as unknown recipients",
        )
        assert first.numbers["messages_5m"] == 4 and first.numbers["recipients_5m"] == 12
        assert first.numbers["recipient_domains_5m"] == 3
        mailed = scene.mailed()
        assert [rcpts for rcpts, _ in mailed] == [(OWNER,), (OPERATORS,)]
        assert "(incident 1)" in mailed[1][1]
        assert scene.sample("ugem_detector_suspensions_total", "enforce") == 1
        assert scene.sample("ugem_incidents_opened_total", "enforce") == 1
        assert scene.detector.resumed == []

        await scene.service.resume(CONN, "cleaned up", "api:noc")
        assert scene.detector.resumed == [CONN]
        await enforcer.act(verdict(now + 600))  # the incident is still open: it joins it
        [incident] = await incidents(scene, enforcer)
        assert incident.verdicts == 2 and incident.last_verdict_at == now + 600
        conn = scene.service.registry.get(CONN)
        assert conn is not None and conn.state_reason.endswith("(incident 1)")
        assert scene.sample("ugem_incidents_opened_total", "enforce") == 1
    finally:
        await enforcer.stop()


async def test_shadow_opens_an_incident_alerts_the_operators_only_and_rearms_an_hour_later(
    scene: Scene,
) -> None:
    enforcer = scene.enforcer("shadow")
    ts = scene.clock.now()
    enforcer.observe(accepted(ts))
    await enforcer.act(verdict(ts))
    conn = scene.service.registry.get(CONN)
    assert conn is not None and conn.state == ConnState.CONNECTED
    assert await scene.actions() == [("detector", WOULD_SUSPEND), ("detector", "incident.open")]
    [incident] = await incidents(scene, enforcer)
    assert (incident.mode, incident.action) == (Mode.SHADOW, Action.WOULD_SUSPEND)
    [(rcpts, text)] = scene.mailed()
    assert rcpts == (OPERATORS,)  # never the owner
    assert (
        "would have been suspended (incident 1)" in read_notice(scene.outbox.sent[0].data).subject
    )
    assert 'shadow mode ([anomaly] mode = "shadow")' in text
    assert "recipients in the last 5 min: 3" in text and REASON in text
    assert scene.sample("ugem_detector_suspensions_total", "shadow") == 1
    assert scene.sample("ugem_detector_suspensions_total", "enforce") == 0
    assert scene.sample("ugem_incidents_opened_total", "shadow") == 1

    enforcer.observe(accepted(ts + SHADOW_REARM_S - 1))
    assert scene.detector.resumed == []
    enforcer.observe(accepted(ts + SHADOW_REARM_S))
    assert scene.detector.resumed == [CONN]
    assert enforcer.observe(accepted(ts, connection="")) is None

    await enforcer.act(verdict(ts + SHADOW_REARM_S + 10))  # the same incident: no new alert
    [incident] = await incidents(scene, enforcer)
    assert incident.verdicts == 2
    assert len(scene.outbox.sent) == 1
    assert scene.sample("ugem_incidents_opened_total", "shadow") == 1


async def test_a_closed_incident_lets_the_next_verdict_open_a_new_one(scene: Scene) -> None:
    enforcer = scene.enforcer("shadow")
    ts = scene.clock.now()
    await enforcer.act(verdict(ts))
    await enforcer.incidents.close(1, "api:noc", "known newsletter")
    await enforcer.act(verdict(ts + SHADOW_REARM_S))
    assert [(i.id, i.state) for i in await incidents(scene, enforcer)] == [
        (2, IncidentState.OPEN),
        (1, IncidentState.CLOSED),
    ]
    assert len(scene.outbox.sent) == 2  # one alert per incident


async def under_a_ceiling_of_10(enforcer: Enforcer, ts: float) -> Override:
    """A ceiling of 10 messages an hour from `ts` for two hours, and 5 messages under it."""
    request = OverrideRequest(
        CONN, OverrideKind.CEILING, "newsletter", ends_at=ts + 7200, max_messages_per_hour=10
    )
    ceiling = await enforcer.overrides.set(request, "api:noc")
    for i in range(5):
        enforcer.observe(accepted(ts + i))
    return ceiling


async def test_a_ceiling_withholds_a_verdict_below_it_and_acts_once_traffic_crosses_it(
    scene: Scene,
) -> None:
    enforcer = scene.enforcer("enforce")
    ts = scene.clock.now()
    ceiling = await under_a_ceiling_of_10(enforcer, ts)
    await enforcer.act(verdict(ts + 5))
    conn = scene.service.registry.get(CONN)
    assert conn is not None and conn.state == ConnState.CONNECTED
    [entry] = [r.entry for r in await scene.service.audit.list(CONN, actor="detector")]
    assert (entry.action, entry.reason) == (WITHIN_CEILING, REASON)
    assert '"messages_60m": 5' in entry.details and ceiling.id in entry.details
    assert await incidents(scene, enforcer) == [] and scene.outbox.sent == []

    released = [enforcer.observe(accepted(ts + 10 + i)) for i in range(6)]
    assert released[:5] == [None] * 5  # 10 messages: at the ceiling, not above it
    crossing = released[5]
    assert crossing is not None and crossing.ts == ts + 15  # the 11th message
    await enforcer.act(crossing)
    conn = scene.service.registry.get(CONN)
    assert conn is not None and conn.state == ConnState.SUSPENDED
    assert "11 messages, 33 recipients in the last hour: above the planned ceiling of " in (
        conn.state_reason
    )
    assert f"10 messages per hour (override {ceiling.id})" in conn.state_reason


async def test_a_withheld_verdict_lapses_and_the_detector_watches_afresh(scene: Scene) -> None:
    enforcer = scene.enforcer("enforce")
    ts = scene.clock.now()
    request = OverrideRequest(
        CONN, OverrideKind.CEILING, "newsletter", ends_at=ts + 7200, max_messages_per_hour=100
    )
    await enforcer.overrides.set(request, "api:noc")
    await enforcer.act(verdict(ts))
    enforcer.observe(accepted(ts + WITHHELD_S - 1))
    assert scene.detector.resumed == []
    assert enforcer.observe(accepted(ts + WITHHELD_S)) is None
    assert scene.detector.resumed == [CONN]


async def test_an_exempt_connection_is_never_suspended_its_incident_says_exempted(
    scene: Scene,
) -> None:
    enforcer = scene.enforcer("enforce")
    request = OverrideRequest(CONN, OverrideKind.EXEMPT, "agreed by letter", permanent=True)
    exemption = await enforcer.overrides.set(request, "api:root")
    await enforcer.act(verdict(scene.clock.now() + 60))
    conn = scene.service.registry.get(CONN)
    assert conn is not None and conn.state == ConnState.CONNECTED
    [incident] = await incidents(scene, enforcer)
    assert (incident.mode, incident.action) == (Mode.SHADOW, Action.EXEMPTED)
    assert (await scene.actions())[0] == ("detector", EXEMPTED)
    [(rcpts, text)] = scene.mailed()
    assert rcpts == (OPERATORS,) and f"exempt: override {exemption.id}" in text
    assert scene.sample("ugem_incidents_opened_total", "shadow") == 1


class EagerDetector(SpyDetector):
    """A verdict on the first message of a connection it watches (the rules are not the point)."""

    def __init__(self) -> None:
        super().__init__()
        self.held: set[str] = set()

    def accepted(
        self,
        ts: float,
        connection: str,
        sender: str,
        rcpts: list[str],
        ip: str = "",
        size: int = 0,
    ) -> Verdict | None:
        if connection in self.held:
            return None
        self.held.add(connection)
        return verdict(ts)

    def resume(self, connection: str) -> None:
        self.held.discard(connection)
        super().resume(connection)


class FailingOnce(OverrideService):
    """Overrides whose first lookup fails with an error that is not the store's (a damaged
    document, a bug): the verdict cannot be acted on."""

    failed = False

    async def in_force(self, connection: str, at: float | None = None) -> Override | None:
        if not self.failed:
            self.failed = True
            raise ValueError("override document unreadable (test)")
        return await super().in_force(connection, at)


async def test_a_failed_action_is_logged_and_the_next_verdict_tries_again(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    bus, detector = EventBus(), EagerDetector()
    service = scene.service
    overrides = FailingOnce(service.store, service.audit, service.clock)
    enforcer = Enforcer("enforce", bus, service, scene.metrics, detector, overrides=overrides)
    await enforcer.start()
    try:
        bus.publish(accepted(scene.clock.now()))

        async def failed() -> bool:
            return detector.resumed == [CONN]

        await until(failed, "the failure handled")
        assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
            "anomaly_action_failed"
        ]
        bus.publish(accepted(scene.clock.now() + 1))

        async def suspended() -> bool:
            conn = service.registry.get(CONN)
            return conn is not None and conn.state == ConnState.SUSPENDED

        await until(suspended, "the next verdict acted on")
    finally:
        await enforcer.stop()


def test_every_number_measured_has_a_reading() -> None:
    features, baseline = Features(0.0), Baseline(0.0)
    features.accepted(1.0, "a@x.kz", ["b@y.kz"])
    numbers = measure(features, baseline, 1.0)
    assert set(numbers) == set(NUMBERS)
    assert numbers["messages_60m"] == 1 and numbers["baseline_warm"] == 0


def test_off_is_no_enforcer(scene: Scene) -> None:
    with pytest.raises(ConfigError, match=r"anomaly\.mode"):
        scene.enforcer("off")


async def test_baselines_go_to_the_store_and_back_and_a_damaged_one_is_skipped(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    enforcer = scene.enforcer("shadow")
    now = scene.clock.now()
    for i in range(100):
        enforcer.observe(accepted(now + 300 * i))  # a message every 5 minutes for 8 hours
    assert await enforcer.save_baselines() == 1
    store = scene.service.store
    await store.doc_put(BASELINE_DOC, "damaged.gov.kz", '{"slots": 5}')

    later = Enforcer("shadow", EventBus(), scene.service, Metrics(), Detector(keep_counting=True))
    with caplog.at_level(logging.WARNING, logger="anomaly.enforce"):
        assert await later.load_baselines() == 1
    skipped = [r for r in caplog.records if getattr(r, "event", "") == "baseline_unreadable"]
    assert [r.fields["connection"] for r in skipped] == ["damaged.gov.kz"]  # type: ignore[attr-defined]
    later.observe(accepted(now + 300 * 100))
    traffic = later.detector.traffic(CONN)
    assert traffic is not None and traffic[1].expected(now + 300 * 100)[2]


# -- throttling ------------------------------------------------------------------------------

LIFTED_WHY = "no throttling evidence for 15 min"


def throttle(ts: float, reason: str = REASON) -> Verdict:
    return Verdict(ts, CONN, "throttle", reason, 5.5)


def lift(ts: float) -> Verdict:
    return Verdict(ts, CONN, "lift", LIFTED_WHY)


def gauge(scene: Scene) -> float | None:
    return scene.metrics.registry.get_sample_value("ugem_throttled_connections", {})


def test_over_until_is_when_the_5_minute_window_would_fall_below_the_cap() -> None:
    minute = 29_000_000  # a minute's number since the epoch
    features = Features(minute * 60.0)
    for m, n in ((0, 5), (1, 10), (2, 5)):  # recipients in three minutes in a row
        features.accepted((minute + m) * 60.0, "a@x.kz", [f"r{i}@y.kz" for i in range(n)])
    assert over_until(features, 21) == 0.0  # 20 in the window: under the cap
    assert over_until(features, 20) == (minute + 5) * 60.0  # then 15: the first minute left
    assert over_until(features, 15) == (minute + 6) * 60.0  # then 5: the second one left too
    assert over_until(features, 5) == (minute + 7) * 60.0  # then none: the window is empty


async def test_enforce_throttles_records_alerts_the_operators_only_and_lifts(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="anomaly.enforce")
    enforcer = scene.enforcer("enforce")
    board, ts = enforcer.board, scene.clock.now()
    enforcer.observe(accepted(ts))  # 3 recipients
    await enforcer.act(throttle(ts))
    assert board.throttled(CONN) and board.cap(CONN) == THROTTLE_FLOOR  # a cold baseline
    assert not board.refuses(CONN, ts)  # under the cap: its mail is accepted
    for i in range(1, 7):
        enforcer.observe(accepted(ts + i))  # 21 recipients in 5 min
    assert board.refuses(CONN, ts + 7) and board.refuses(CONN, ts + 240)
    assert not board.refuses(CONN, ts + 360)  # its window would be empty by then
    conn = scene.service.registry.get(CONN)
    assert conn is not None and conn.state == ConnState.CONNECTED
    [incident] = await incidents(scene, enforcer)
    assert (incident.mode, incident.action) == (Mode.ENFORCE, Action.THROTTLED)
    assert incident.evidence[0].numbers[CAP] == THROTTLE_FLOOR
    assert incident.evidence[0].reason == REASON
    assert "recipients per 5 min let through while throttled: 20" in incident.evidence[0].lines()
    assert await scene.actions() == [("detector", THROTTLED), ("detector", "incident.open")]
    [alert] = scene.outbox.sent  # the operators are alerted, the owner is not
    notice = read_notice(alert.data)
    assert alert.rcpts == (OPERATORS,) and f"{CONN} is throttled (incident 1)" in notice.subject
    assert f"Cap: {THROTTLE_FLOOR:g} recipients" in notice.text
    assert REASON in notice.text and "451 4.7.1" in notice.text
    assert scene.sample("ugem_detector_throttles_total", "enforce") == 1
    assert scene.sample("ugem_detector_throttles_total", "shadow") == 0
    assert scene.sample("ugem_detector_suspensions_total", "enforce") == 0
    assert scene.sample("ugem_incidents_opened_total", "enforce") == 1
    assert gauge(scene) == 1

    await enforcer.act(lift(ts + 1000))
    assert not board.throttled(CONN) and not board.refuses(CONN, ts + 7)
    [incident] = await incidents(scene, enforcer)
    assert [e.action for e in incident.evidence] == [Action.THROTTLED, Action.LIFTED]
    assert incident.evidence[1].reason == LIFTED_WHY and incident.verdicts == 2
    assert incident.action == Action.THROTTLED and incident.state == IncidentState.OPEN
    assert (await scene.actions())[0] == ("detector", THROTTLE_LIFTED)
    assert gauge(scene) == 0 and len(scene.outbox.sent) == 1  # a lift mails no one
    logged = [(r.getMessage(), r.levelno) for r in caplog.records]
    assert ("anomaly_throttled", logging.WARNING) in logged
    assert ("anomaly_throttle_lifted", logging.INFO) in logged

    await enforcer.act(lift(ts + 2000))  # not throttled any more: nothing to record
    [incident] = await incidents(scene, enforcer)
    assert incident.verdicts == 2


async def test_a_suspension_after_a_throttle_joins_its_incident_and_ends_the_throttle(
    scene: Scene,
) -> None:
    enforcer = scene.enforcer("enforce")
    ts = scene.clock.now()
    enforcer.observe(accepted(ts))
    await enforcer.act(throttle(ts))
    await enforcer.act(verdict(ts + 60))
    conn = scene.service.registry.get(CONN)
    assert conn is not None and conn.state == ConnState.SUSPENDED
    assert conn.state_reason == f"abnormal traffic: {REASON} (incident 1)"
    assert not enforcer.board.throttled(CONN) and gauge(scene) == 0
    [incident] = await incidents(scene, enforcer)
    assert [e.action for e in incident.evidence] == [Action.THROTTLED, Action.SUSPENDED]
    assert (incident.mode, incident.action) == (Mode.ENFORCE, Action.SUSPENDED)
    # the throttle's alert, then the suspension's notice and alert, as ever
    assert [rcpts for rcpts, _ in scene.mailed()] == [(OPERATORS,), (OWNER,), (OPERATORS,)]
    assert scene.sample("ugem_detector_suspensions_total", "enforce") == 1
    assert scene.sample("ugem_incidents_opened_total", "enforce") == 1


async def test_shadow_mode_records_a_would_throttle_and_never_refuses(scene: Scene) -> None:
    enforcer = scene.enforcer("shadow")
    ts = scene.clock.now()
    await enforcer.act(throttle(ts))
    for i in range(10):
        enforcer.observe(accepted(ts + i))  # 30 recipients in 5 min
    assert not enforcer.board.throttled(CONN) and not enforcer.board.refuses(CONN, ts + 10)
    [incident] = await incidents(scene, enforcer)
    assert (incident.mode, incident.action) == (Mode.SHADOW, Action.WOULD_THROTTLE)
    assert await scene.actions() == [("detector", WOULD_THROTTLE), ("detector", "incident.open")]
    assert scene.sample("ugem_detector_throttles_total", "shadow") == 1
    assert scene.sample("ugem_detector_throttles_total", "enforce") == 0
    assert scene.outbox.sent == [] and gauge(scene) in (None, 0)
    await enforcer.act(lift(ts + 1000))  # nothing was throttled: nothing lifted
    [incident] = await incidents(scene, enforcer)
    assert incident.verdicts == 1


async def test_an_exempt_connection_is_never_throttled(scene: Scene) -> None:
    enforcer = scene.enforcer("enforce")
    request = OverrideRequest(CONN, OverrideKind.EXEMPT, "agreed by letter", permanent=True)
    await enforcer.overrides.set(request, "api:root")
    ts = scene.clock.now()
    await enforcer.act(throttle(ts))
    for i in range(10):
        enforcer.observe(accepted(ts + i))
    assert not enforcer.board.throttled(CONN) and not enforcer.board.refuses(CONN, ts + 10)
    [incident] = await incidents(scene, enforcer)
    assert (incident.mode, incident.action) == (Mode.SHADOW, Action.EXEMPTED)
    [entry] = [r.entry for r in await scene.service.audit.list(CONN, action=EXEMPTED)]
    assert entry.actor == "detector" and '"verdict": "throttle"' in entry.details
    assert scene.sample("ugem_detector_throttles_total", "shadow") == 1
    assert scene.outbox.sent == []


async def test_a_ceiling_withholds_a_throttle_until_the_traffic_crosses_it(scene: Scene) -> None:
    enforcer = scene.enforcer("enforce")
    ts = scene.clock.now()
    ceiling = await under_a_ceiling_of_10(enforcer, ts)
    await enforcer.act(throttle(ts + 5))
    assert not enforcer.board.throttled(CONN)
    assert (await scene.actions())[0] == ("detector", WITHIN_CEILING)
    assert await incidents(scene, enforcer) == []

    released = [enforcer.observe(accepted(ts + 10 + i)) for i in range(6)]
    crossing = released[5]
    assert released[:5] == [None] * 5 and crossing is not None
    assert (crossing.action, crossing.ts) == ("throttle", ts + 15)
    await enforcer.act(crossing)
    assert enforcer.board.throttled(CONN)
    [incident] = await incidents(scene, enforcer)
    assert incident.action == Action.THROTTLED
    assert f"above the planned ceiling of 10 messages per hour (override {ceiling.id})" in (
        incident.reason
    )


async def test_a_lift_after_the_incident_was_closed_opens_none(scene: Scene) -> None:
    enforcer = scene.enforcer("enforce")
    ts = scene.clock.now()
    await enforcer.act(throttle(ts))
    await enforcer.incidents.close(1, "api:noc", "a known newsletter")
    await enforcer.act(lift(ts + 1000))
    assert not enforcer.board.throttled(CONN)
    [incident] = await incidents(scene, enforcer)
    assert incident.state == IncidentState.CLOSED and incident.verdicts == 1
    [entry] = [r.entry for r in await scene.service.audit.list(CONN, action=THROTTLE_LIFTED)]
    assert '"incident": null' in entry.details


class ClaimedElsewhere(LocalFeed):
    """This node's events, every verdict of which another process claims first."""

    async def claim(self, key: str, ttl: float) -> bool:
        return False


class Scripted(SpyDetector):
    """Gives the next scripted verdict action at each message (the rules are not the point)."""

    def __init__(self, *actions: str) -> None:
        super().__init__()
        self.script = list(actions)

    def accepted(
        self,
        ts: float,
        connection: str,
        sender: str,
        rcpts: list[str],
        ip: str = "",
        size: int = 0,
    ) -> Verdict | None:
        super().accepted(ts, connection, sender, rcpts, ip, size)
        action = self.script.pop(0)
        return Verdict(ts, connection, action, REASON) if action else None


async def test_a_throttle_another_process_claims_changes_this_board_but_records_nothing(
    scene: Scene,
) -> None:
    bus, detector = EventBus(), Scripted("throttle", "", "lift")
    feed = ClaimedElsewhere(bus, scene.metrics)
    enforcer = Enforcer("enforce", bus, scene.service, scene.metrics, detector, feed=feed)
    await enforcer.start()
    try:
        now = scene.clock.now()
        bus.publish(accepted(now))

        async def throttled() -> bool:
            return enforcer.board.throttled(CONN)

        await until(throttled, "this process's board throttling the connection")
        bus.publish(accepted(now + 1))
        bus.publish(accepted(now + 2))

        async def lifted() -> bool:
            return not enforcer.board.throttled(CONN) and not detector.script

        await until(lifted, "this process's board lifting it")
        assert await incidents(scene, enforcer) == []
        assert await scene.actions() == []  # the claimer records, this one does not
        assert scene.sample("ugem_detector_throttles_total", "enforce") == 0
        assert detector.resumed == []  # a throttle elsewhere is not a suspension
    finally:
        await enforcer.stop()


async def test_a_suspension_by_an_operator_ends_the_throttle(scene: Scene) -> None:
    enforcer = scene.enforcer("enforce")
    await enforcer.start()
    try:
        await enforcer.act(throttle(scene.clock.now()))
        assert enforcer.board.throttled(CONN) and gauge(scene) == 1
        await scene.service.suspend(CONN, "checking its server", "api:noc")
        assert not enforcer.board.throttled(CONN) and gauge(scene) == 0
        await scene.service.resume(CONN, "checked", "api:noc")
        assert scene.detector.resumed == [CONN]  # watched afresh
    finally:
        await enforcer.stop()


def test_a_bounce_is_counted_by_what_the_remote_reply_says(scene: Scene) -> None:
    """A 550 whose text says spam (Outcome.counted, ugem.core.reply_class) is a refusal to the
    detector, not an unknown user; a plain 550 stays an unknown user."""
    enforcer = scene.enforcer("enforce")
    ts = scene.clock.now()
    enforcer.observe(accepted(ts))
    spam = Outcome(ts + 1, "bounced", "q", CONN, "127.0.0.2", "a@b.kz", 550, "5.7.1 spam", 554)
    unknown = Outcome(ts + 2, "bounced", "q", CONN, "127.0.0.2", "c@b.kz", 550, "5.1.1", 0)
    enforcer.observe(spam)
    enforcer.observe(unknown)
    traffic = enforcer.detector.traffic(CONN)
    assert traffic is not None
    window = traffic[0].window(5)
    assert (window.bounced, window.policy, window.invalid) == (2, 1, 1)


def test_a_complaint_counts_only_when_traced_by_the_gateways_own_queue_id(scene: Scene) -> None:
    """A complaint traced by the gateway's Received line is evidence; one traced by a DKIM
    d= or a sender's domain in the report (anyone may write those) is not, nor one about
    no connection."""
    enforcer = scene.enforcer("enforce")
    ts = scene.clock.now()
    enforcer.observe(accepted(ts))
    for i, by in enumerate(("queue_id", "dkim", "sender_domain", "queue_id")):
        about = "" if i == 3 else CONN
        assert enforcer.observe(Complained(ts + 1 + i, about, i + 1, "abuse", by)) is None
    traffic = enforcer.detector.traffic(CONN)
    assert traffic is not None
    assert traffic[0].window(5).complaints == 1


async def test_the_owners_notice_names_the_blocklists_and_complaints_of_the_last_hours(
    scene: Scene,
) -> None:
    """What the suspension protects the gateway from is among its reasons: the blocklists
    remote servers named refusing the connection's mail, the complaints of its recipients."""
    enforcer = scene.enforcer("enforce")
    ts = scene.clock.now()
    enforcer.observe(accepted(ts))
    enforcer.cited.reply(ts - 7 * 3600, CONN, "SpamCop")  # too long ago to be a reason now
    for i, named in enumerate(("Spamhaus", "Spamhaus", "Barracuda", "")):
        bounce = Outcome(ts + i, "bounced", "q", CONN, "127.0.0.2", "a@b.kz", 554, "", 554)
        enforcer.observe(dataclasses.replace(bounce, reply_class="blocklisted", blocklist=named))
    enforcer.observe(Complained(ts + 5, CONN, 1, "abuse", "queue_id"))
    await enforcer.act(verdict(ts + 6))
    conn = scene.service.registry.get(CONN)
    assert conn is not None and conn.state == ConnState.SUSPENDED
    assert conn.state_reason == (
        f"abnormal traffic: {REASON}; remote servers named blocklists: Spamhaus 2, "
        "Barracuda 1; recipients' complaints: 1 (incident 1)"
    )
    owner_notice = scene.mailed()[0][1]
    assert "Spamhaus 2" in owner_notice and "recipients' complaints: 1" in owner_notice


def test_cited_is_bounded_and_says_nothing_without_notes() -> None:
    cited = Cited()
    assert cited.describe("none.kz", 0.0) == ""
    for i in range(PER_CONNECTION + 10):
        cited.reply(float(i), "a.kz", f"L{i}")
    assert len(cited.describe("a.kz", float(PER_CONNECTION)).split(", ")) == MOST_LISTS
    for i in range(MAX_CONNECTIONS + 5):
        cited.complaint(0.0, f"c{i}.kz")
    assert cited.describe(f"c{MAX_CONNECTIONS + 1}.kz", 0.0) == ""
    assert cited.describe("c0.kz", 0.0) == "recipients' complaints: 1"


class OutageFeed(LocalFeed):
    """This process's events, whose claims fail while `down` (the store unreachable) and
    are all taken by another process when `elsewhere`."""

    down = True
    elsewhere = False

    async def claim(self, key: str, ttl: float) -> bool:
        if self.down:
            raise StoreError("redis store redis://x: connection refused (test)")
        return not self.elsewhere


def outage_enforcer(scene: Scene) -> tuple[Enforcer, OutageFeed, EventBus]:
    bus = EventBus()
    feed = OutageFeed(bus, scene.metrics)
    detector = EagerDetector()
    return Enforcer("enforce", bus, scene.service, scene.metrics, detector, feed=feed), feed, bus


async def held_here(scene: Scene) -> bool:
    conn = scene.service.registry.get(CONN)
    return conn is not None and conn.state == ConnState.SUSPENDED


async def test_a_suspension_in_a_store_outage_holds_here_at_once_and_is_recorded_once_after(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    enforcer, feed, bus = outage_enforcer(scene)
    await enforcer.start()
    try:
        bus.publish(accepted(scene.clock.now()))
        await until(lambda: held_here(scene), "the connection held by this node")
        conn = scene.service.registry.get(CONN)
        assert conn is not None and "suspended by this node alone" in conn.state_reason
        assert scene.service.registry.held_locally(CONN)
        stored = await scene.service.store.get(CONN)
        assert stored is not None and stored.state == ConnState.CONNECTED  # nothing written
        assert scene.service.registry.snapshot().connections[0].state == ConnState.CONNECTED
        assert await incidents(scene, enforcer) == [] and scene.mailed() == []
        assert len(enforcer.pending) == 1
        assert await enforcer.pending.finish() == 0  # still down: still pending, still held

        feed.down = False
        assert await enforcer.pending.finish() == 1
        assert await enforcer.pending.finish() == 0  # recorded once
        [incident] = await incidents(scene, enforcer)
        assert (incident.mode, incident.action) == (Mode.ENFORCE, Action.SUSPENDED)
        stored = await scene.service.store.get(CONN)
        assert stored is not None and stored.state == ConnState.SUSPENDED
        assert stored.state_reason == f"abnormal traffic: {REASON} (incident 1)"
        assert not scene.service.registry.held_locally(CONN)
        assert await held_here(scene)
        assert [rcpts for rcpts, _ in scene.mailed()] == [(OWNER,), (OPERATORS,)]
        assert scene.sample("ugem_detector_suspensions_total", "enforce") == 1
        assert await scene.actions() == [
            ("detector", "connection.suspend"),
            ("detector", "incident.open"),
        ]
        lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert lines.count("anomaly_suspended_locally") == 1
        assert "anomaly_action_failed" not in lines
    finally:
        await enforcer.stop()


async def test_an_exemption_found_when_the_store_returns_lifts_the_local_hold(
    scene: Scene,
) -> None:
    enforcer, feed, bus = outage_enforcer(scene)
    request = OverrideRequest(CONN, OverrideKind.EXEMPT, "agreed by letter", permanent=True)
    await enforcer.overrides.set(request, "api:root")
    await enforcer.start()
    try:
        bus.publish(accepted(scene.clock.now()))
        await until(lambda: held_here(scene), "held here: overrides are not known in an outage")
        feed.down = False
        assert await enforcer.pending.finish() == 1
        conn = scene.service.registry.get(CONN)
        assert conn is not None and conn.state == ConnState.CONNECTED
        [incident] = await incidents(scene, enforcer)
        assert (incident.mode, incident.action) == (Mode.SHADOW, Action.EXEMPTED)
    finally:
        await enforcer.stop()


async def test_a_verdict_of_the_outage_claimed_elsewhere_is_left_to_that_process(
    scene: Scene,
) -> None:
    enforcer, feed, bus = outage_enforcer(scene)
    await enforcer.start()
    try:
        bus.publish(accepted(scene.clock.now()))
        await until(lambda: held_here(scene), "held here")
        feed.down, feed.elsewhere = False, True
        assert await enforcer.pending.finish() == 1
        conn = scene.service.registry.get(CONN)
        assert conn is not None and conn.state == ConnState.CONNECTED  # the store's state
        assert await incidents(scene, enforcer) == [] and scene.mailed() == []
    finally:
        await enforcer.stop()
