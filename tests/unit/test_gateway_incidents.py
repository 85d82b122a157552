"""Incidents of the gateway itself (`ugem.core.services.gateway`) over a real SQLite store.

The ranking: a connection's share of the rejections plus its share of the
evidence (complaints; a throttle or a detector incident not closed), ties to
more rejections, then more mail; connections without mail or complaints are
not named. The burst rule, in the replies' own time (a `FakeClock`): below
the threshold nothing, at it one incident naming the lists cited and the
connections ranked, and one alert to the operators; later replies open no
other; once the incident is closed and a quiet period passed, the rule
re-arms and the next burst opens a new one (a quiet period alone adds the
burst to the incident still standing, without an alert). A DNSBL listing
told through the reputation service's hooks opens a gateway incident of
that address and zone and alerts the operators (never an owner); a
delisting joins it and alerts; a node that restarts and finds the listing
again neither opens another nor alerts again. Through the bus, the watch
counts every outcome and complaint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.admin import NOTICES, OPERATORS, ListOutbox
from tests.support.mail import read_notice
from tests.support.waiting import eventually
from ugem.core.clock import FakeClock
from ugem.core.events import Complained, EventBus, Outcome
from ugem.core.metrics import Metrics
from ugem.core.reply_class import BLOCKLISTED, DELIVERED, POLICY, SPAM_CONTENT, UNKNOWN_USER
from ugem.core.reply_tally import REJECTIONS, Counts
from ugem.core.services.audit import AuditLog
from ugem.core.services.gateway import (
    ACTOR,
    ANOMALY_POINTS,
    BURST_SUBJECT,
    BurstRule,
    GatewaySettings,
    GatewayWatch,
    listing_subject,
    rank,
)
from ugem.core.services.incidents import (
    Action,
    Evidence,
    Incident,
    IncidentKind,
    IncidentService,
    IncidentState,
    Mode,
)
from ugem.core.services.notices import Notifier
from ugem.core.services.reputation import Listing, Probe, ReputationService
from ugem.core.store.sqlite import SqliteStore
from ugem.core.throttle import ThrottleBoard

ADDRESS, ZEN = "198.51.100.25", "zen.spamhaus.org"
BAD, GOOD, NOISY = "mdai.gov.kz", "akimat.gov.kz", "maslikhat.gov.kz"
SPAMHAUS = "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org"
REPLIES, DOMAINS, WINDOW, QUIET = 4, 2, 600.0, 3600.0
SETTINGS = GatewaySettings((ADDRESS,), 6 * 3600.0, REPLIES, DOMAINS, WINDOW, QUIET)


def counts(attempts: int, complaints: int = 0, **rejected: int) -> Counts:
    found = {cls: rejected.get(cls.replace("-", "_"), 0) for cls in REJECTIONS}
    return Counts(attempts, complaints, found)


def outcome(ts: float, conn: str, rcpt: str, cls: str, blocklist: str = "") -> Outcome:
    code, kind = (250, "delivered") if cls == DELIVERED else (554, "bounced")
    text = SPAMHAUS if cls == BLOCKLISTED else ""
    return Outcome(ts, kind, "q1", conn, "127.0.0.2", rcpt, code, text, code, cls, blocklist)  # type: ignore[arg-type]


def blocklisted(ts: float, rcpt: str, conn: str = BAD, blocklist: str = "Spamhaus") -> Outcome:
    return outcome(ts, conn, rcpt, BLOCKLISTED, blocklist)


# -- the ranking ---------------------------------------------------------------------------


def test_connections_rank_by_their_share_of_rejections_and_of_evidence() -> None:
    found = {
        "a.gov.kz": counts(100, blocklisted=10, policy=2),  # 12 of 14 rejections
        "b.gov.kz": counts(1000, 2, unknown_user=2),  # 2 of 14, 2 complaints
        "c.gov.kz": counts(50),  # throttled: ANOMALY_POINTS
        "d.gov.kz": counts(5),
        "e.gov.kz": counts(7),
        "f.gov.kz": counts(0),  # nothing in the window: not named
    }
    ranked = rank(found, {"c.gov.kz": "throttled"})
    points = 2 + ANOMALY_POINTS
    order = ["a.gov.kz", "c.gov.kz", "b.gov.kz", "e.gov.kz", "d.gov.kz"]  # d, e: by their mail
    assert [s.connection for s in ranked] == order
    first, second, third = ranked[:3]
    assert first.score == round(12 / 14, 3) and first.rejections == {"blocklisted": 10, "policy": 2}
    assert second.score == round(ANOMALY_POINTS / points, 3) and second.anomaly == "throttled"
    assert third.score == round(2 / 14 + 2 / points, 3) and third.complaints == 2
    assert first.line() == (
        "a.gov.kz: 12 of 100 delivery attempts rejected (blocklisted 10, policy 2) [score 0.86]"
    )
    assert "2 complaints" in third.line() and second.line().endswith("throttled [score 0.60]")
    # Without the throttle b's complaints are all the evidence: 2/14 + 2/2 beats 12/14.
    assert [s.connection for s in rank(found, {}, limit=2)] == ["b.gov.kz", "a.gov.kz"]
    assert rank({}, {}) == ()


def test_a_tie_goes_to_more_rejections_then_more_mail() -> None:
    found = {
        "a.gov.kz": counts(10, 1),  # evidence 1 of 2: score 0.5, no rejections
        "b.gov.kz": counts(10, spam_content=1),  # rejections 1 of 2: score 0.5
        "c.gov.kz": counts(20, 1),
        "d.gov.kz": counts(5, policy=1),
    }
    order = ["b.gov.kz", "d.gov.kz", "c.gov.kz", "a.gov.kz"]
    assert [s.connection for s in rank(found, {})] == order


# -- the burst rule ------------------------------------------------------------------------


def test_the_burst_rule_counts_replies_and_domains_within_its_window() -> None:
    rule = BurstRule(REPLIES, DOMAINS, WINDOW, QUIET)
    t = 1000.0
    for n in range(REPLIES + 3):  # many from one domain: no burst
        assert rule.observe(t + n, "example.org", "Spamhaus") is None
    assert rule.observe(t + WINDOW + 100, "example.net", "") is None  # the others aged out
    assert rule.observe(t + WINDOW + 101, "example.net", "Barracuda") is None
    assert rule.observe(t + WINDOW + 102, "example.net", "Spamhaus") is None
    burst = rule.observe(t + WINDOW + 103, "example.org", "Spamhaus")
    assert burst is not None and burst.armed and not rule.armed
    assert (burst.replies, burst.domains) == (REPLIES, ("example.net", "example.org"))
    assert burst.blocklists == (("Spamhaus", 2), ("Barracuda", 1))
    assert (burst.first_ts, burst.ts) == (t + WINDOW + 100, t + WINDOW + 103)
    again = [rule.observe(t + WINDOW + 200 + n, f"d{n % 2}.example", "") for n in range(REPLIES)]
    assert again[:-1] == [None] * (REPLIES - 1) and again[-1] is not None
    assert not again[-1].armed  # a burst while the first one's incident may stand
    later = t + WINDOW + 200 + REPLIES + QUIET
    assert rule.observe(later, "example.org", "") is None and rule.armed  # quiet: armed again
    assert BurstRule(2, 5, WINDOW, QUIET).replies == 5  # never fewer replies than domains


# -- the watch -----------------------------------------------------------------------------


@dataclass
class Scene:
    store: SqliteStore
    clock: FakeClock
    incidents: IncidentService
    outbox: ListOutbox
    throttle: ThrottleBoard
    metrics: Metrics

    def watch(self) -> GatewayWatch:
        notifier = Notifier(self.outbox, AuditLog(self.store, self.clock), self.clock, NOTICES)
        return GatewayWatch(self.incidents, notifier, self.clock, SETTINGS,
                            throttle=self.throttle, metrics=self.metrics)  # fmt: skip

    async def gateway(self) -> list[Incident]:
        return [i for i in await self.incidents.list() if i.kind == IncidentKind.GATEWAY]

    def alerts(self) -> list[tuple[str, str]]:
        """(subject, text) of every mail queued; each must be to the operators only."""
        assert all(m.rcpts == (OPERATORS,) for m in self.outbox.sent)
        return [(n.subject, n.text) for n in (read_notice(m.data) for m in self.outbox.sent)]

    def opened(self, cause: str) -> float:
        name = "ugem_gateway_incidents_opened_total"
        return self.metrics.registry.get_sample_value(name, {"cause": cause}) or 0.0


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    store, clock = SqliteStore(tmp_path / "u.db"), FakeClock()
    try:
        incidents = IncidentService(store, AuditLog(store, clock), clock)
        yield Scene(store, clock, incidents, ListOutbox(), ThrottleBoard(), Metrics())
    finally:
        await store.close()


async def traffic(watch: GatewayWatch, ts: float) -> None:
    """An hour of mail before: BAD's refused as blocklisted and spam, with 2 complaints;
    GOOD's delivered; NOISY's refused once (unknown user), with a complaint."""
    for n in range(6):
        await watch.observe(blocklisted(ts + n, f"u{n}@example.org", blocklist=""))
    await watch.observe(outcome(ts + 6, BAD, "v@example.org", SPAM_CONTENT))
    for n in range(2):
        await watch.observe(Complained(ts + 7 + n, BAD, 1, "abuse", "queue_id"))
    for n in range(20):
        await watch.observe(outcome(ts + 10 + n, GOOD, f"w{n}@example.net", DELIVERED))
    await watch.observe(outcome(ts + 40, NOISY, "x@example.net", UNKNOWN_USER))
    await watch.observe(Complained(ts + 41, NOISY, 1, "abuse", "queue_id"))


async def burst(watch: GatewayWatch, ts: float) -> None:
    """REPLIES blocklisted replies of BAD from DOMAINS domains, the last one completing it."""
    for n in range(REPLIES):
        await watch.observe(blocklisted(ts + n, f"b{n}@d{n % DOMAINS}.example"))


async def test_a_burst_of_blocklisted_replies_opens_one_incident_until_closed_and_quiet(
    scene: Scene,
) -> None:
    watch, t0 = scene.watch(), scene.clock.now()
    scene.throttle.throttle(NOISY, 20.0)
    await traffic(watch, t0 - 3600)
    for n in range(REPLIES - 1):  # below the threshold: nothing
        await watch.observe(blocklisted(t0 + n, f"a{n}@d{n % DOMAINS}.example"))
    assert await scene.gateway() == [] and scene.outbox.sent == []

    await watch.observe(blocklisted(t0 + 10, "a9@d9.example", blocklist="Barracuda"))
    [incident] = await scene.gateway()
    assert (incident.connection, incident.kind, incident.mode, incident.action) == (
        BURST_SUBJECT, IncidentKind.GATEWAY, Mode.ALERT, Action.BLOCKLISTED_REPLIES,
    )  # fmt: skip
    assert incident.blocklists == ("Spamhaus", "Barracuda") and incident.addresses == (ADDRESS,)
    assert [s.connection for s in incident.suspects] == [BAD, NOISY, GOOD]
    assert incident.suspects[1].anomaly == "throttled" and incident.suspects[1].complaints == 1
    numbers = incident.evidence[0].numbers
    assert (numbers["blocklisted_replies"], numbers["blocklisted_domains"]) == (REPLIES, 3)
    assert numbers["rejections_window"] == 6 + 1 + REPLIES + 1 and numbers["window_h"] == 6
    assert "lists cited: Spamhaus (3), Barracuda (1)" in incident.reason
    [(subject, text)] = scene.alerts()
    assert subject == f"[UGEM] gw.test: {REPLIES} blocklisted replies from 3 domains (incident 1)"
    assert f"  1. {BAD}: {REPLIES + 7} of {REPLIES + 7} delivery attempts rejected" in text
    assert "Blocklists named: Spamhaus, Barracuda" in text and "throttled" in text
    assert scene.opened("blocklisted-replies") == 1
    [audit] = [r for r in await watch.incidents.audit.list(BURST_SUBJECT)]
    assert (audit.entry.actor, audit.entry.action) == (ACTOR, "incident.open")

    await burst(watch, t0 + 60)  # later replies, a whole threshold more: no second incident
    await burst(watch, t0 + 120)
    assert [i.id for i in await scene.gateway()] == [incident.id] and len(scene.outbox.sent) == 1
    assert (await scene.incidents.get(incident.id)).verdicts == 1

    await scene.incidents.close(incident.id, "api:noc", "delisting requested")
    scene.clock.set(t0 + 120 + QUIET)
    await burst(watch, t0 + 120 + QUIET)  # closed, then quiet: the rule re-arms
    second, first = await scene.gateway()
    assert (first.state, second.state) == (IncidentState.CLOSED, IncidentState.OPEN)
    assert second.id == incident.id + 1 and len(scene.alerts()) == 2
    assert scene.opened("blocklisted-replies") == 2


async def test_a_quiet_period_alone_adds_the_next_burst_to_the_incident_standing(
    scene: Scene,
) -> None:
    watch, t0 = scene.watch(), scene.clock.now()
    await burst(watch, t0)
    await burst(watch, t0 + QUIET + 10)
    [incident] = await scene.gateway()
    assert incident.verdicts == 2 and len(scene.outbox.sent) == 1  # no second alert
    await scene.incidents.acknowledge(incident.id, "api:noc")
    await scene.incidents.close(incident.id, "api:noc")
    await burst(watch, t0 + QUIET + 20)  # closed: the next threshold opens a new one at once
    assert len(await scene.gateway()) == 2 and len(scene.outbox.sent) == 2


class Scripted:
    """Blocklists answering what the test says (clear by default)."""

    def __init__(self) -> None:
        self.state = Listing.CLEAR

    async def check(self, addresses: Sequence[str], zones: Sequence[str]) -> list[Probe]:
        listed = self.state == Listing.LISTED
        reason = "Listed by SBL, see https://check.spamhaus.org/sbl/query/SBL1" if listed else ""
        codes = ("127.0.0.2",) if listed else ()
        return [Probe(a, z, self.state, reason, codes) for a in addresses for z in zones]


async def test_a_listing_through_the_reputation_hooks_opens_a_gateway_incident_and_alerts(
    scene: Scene,
) -> None:
    lists, watch = Scripted(), scene.watch()
    reputation = ReputationService(lists, (ADDRESS,), (ZEN,), scene.clock)
    reputation.on_change(watch.on_reputation)
    await scene.incidents.record(  # the detector's incident of NOISY, not closed
        NOISY, Mode.SHADOW, Evidence(scene.clock.now(), Action.WOULD_SUSPEND, "odd", {}), "detector"
    )
    await traffic(watch, scene.clock.now() - 3600)
    await reputation.check()  # clear at first: no change
    assert await scene.gateway() == [] and scene.outbox.sent == []

    lists.state = Listing.LISTED
    scene.clock.advance(3600)
    await reputation.check()
    [incident] = await scene.gateway()
    assert incident.connection == listing_subject(ADDRESS, ZEN) == f"gateway:{ADDRESS}@{ZEN}"
    assert (incident.action, incident.addresses, incident.zone) == (Action.LISTED, (ADDRESS,), ZEN)
    assert incident.blocklists == (ZEN,)
    assert incident.reason.startswith(f"{ADDRESS} is listed on {ZEN} (127.0.0.2): Listed by SBL")
    assert [s.connection for s in incident.suspects] == [BAD, NOISY, GOOD]
    assert incident.suspects[1].anomaly == "incident 1 (would-suspend)"
    [(subject, text)] = scene.alerts()
    assert subject == f"[UGEM] gw.test: {ADDRESS} listed on {ZEN} (incident 2)"
    assert f"Gateway: gw.test ({ADDRESS})" in text and f"Blocklists named: {ZEN}" in text
    assert f"  1. {BAD}: 7 of 7 delivery attempts rejected (blocklisted 6, spam-content 1)" in text
    assert "no owner was notified" in text and scene.opened("listed") == 1

    scene.clock.advance(3600)
    await reputation.check()  # still listed: no change, nothing new
    assert len(scene.outbox.sent) == 1

    lists.state = Listing.UNKNOWN
    await reputation.check()  # no answer is no verdict: nothing
    lists.state = Listing.CLEAR
    await reputation.check()
    [delisted] = await scene.gateway()
    assert [e.action for e in delisted.evidence] == [Action.LISTED, Action.DELISTED]
    assert delisted.state == IncidentState.OPEN  # the operators close it
    assert scene.alerts()[-1][0] == f"[UGEM] gw.test: {ADDRESS} delisted from {ZEN} (incident 2)"

    lists.state = Listing.LISTED
    await reputation.check()  # listed again while it stands: joins it, alerts
    assert [i.id for i in await scene.gateway()] == [delisted.id] and len(scene.outbox.sent) == 3

    restarted = ReputationService(lists, (ADDRESS,), (ZEN,), scene.clock)
    restarted.on_change(scene.watch().on_reputation)
    await restarted.check()  # a new process finds it listed: the same incident, no alert
    [again] = await scene.gateway()
    assert again.verdicts == 4 and len(scene.outbox.sent) == 3 and scene.opened("listed") == 1


async def test_through_the_bus_every_outcome_and_complaint_is_counted(scene: Scene) -> None:
    watch, bus, t0 = scene.watch(), EventBus(), scene.clock.now()
    await watch.start(bus)
    try:
        bus.publish(outcome(t0, GOOD, "a@example.net", POLICY))
        bus.publish(Complained(t0, GOOD, 1, "abuse", "dkim"))
        for n in range(REPLIES):
            bus.publish(blocklisted(t0 + n, f"b{n}@d{n % DOMAINS}.example"))
        await eventually(lambda: len(scene.outbox.sent) == 1, 10, "the burst's alert")
        assert watch.tally.counts(t0 + REPLIES)[GOOD] == counts(1, 1, policy=1)
    finally:
        await watch.stop()
    assert bus.subscriptions == []
