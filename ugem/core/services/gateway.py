"""Incidents of the gateway itself: its addresses on the DNS blocklists, and bursts of replies
refusing its mail as blocklisted; each one alerts the operators, naming the connections
whose mail most likely brought it on.

`GatewayWatch` opens gateway incidents (`IncidentService.record_gateway`: kind
"gateway", mode "alert", actor `ACTOR`) in two ways:

- **A listing** (`on_reputation`, the hook a node's worker 0 hangs on
  `ReputationService.on_change`, so each change is handled once, not once a
  worker): when an address of the gateway becomes `listed` on a zone, the
  incident of subject `listing_subject(address, zone)` is opened (or, when
  it is not closed, e.g. after a restart of the node, the listing is added to
  it) with the list's reason and codes; when that address is found `clear`
  there again, "delisted" is added to the incident not closed (opening none).
  Either change alerts the operators; a listing that only finds its incident
  already saying "listed" (the node restarted) does not alert again. A pair
  that turns unusable or unknown is no change of verdict: nothing happens.
- **A burst** (`observe`, fed by this process's event bus through `start`):
  `BurstRule` counts the delivery replies of class blocklisted
  (`ugem.core.reply_class`), a connection's mail, a bounce or inbound mail
  alike (any refusal of the gateway's address is evidence of a listing); at
  least `burst_replies` of them from at least `burst_domains` distinct
  destination (recipient) domains within `burst_window` seconds (all
  `[reputation]` knobs) open one incident of subject `BURST_SUBJECT`, before
  any DNSBL may show a listing, naming the lists the replies cite. The rule
  then disarms: later replies open nothing until the incident is closed (the
  next burst opens a new one) or until `burst_quiet` seconds pass without a
  blocklisted reply (the next burst is added to the incident if it still
  stands, without a new alert). Every worker watches the replies to the mail
  it delivered itself; the store keeps one incident not closed per subject,
  so workers that fire together share it and only the one that opened it
  alerts.

Each incident, and the alert, names the connections whose mail left the
gateway within `[reputation] incident_window` seconds before it (6 h by
default), ranked by `rank`: a connection's score is its share of all the
rejections (replies of class blocklisted, spam content, policy or unknown
user, counted by `ugem.core.reply_tally.ReplyTally` from the bus's
`Outcome` events) plus its share of all the abnormal-traffic evidence
(points: 1 a feedback-loop complaint, the bus's `Complained` events;
`ANOMALY_POINTS` while the anomaly detector throttles it or has an incident
of it not closed), 0 to 2; ties go to more rejections, then more mail. The
first `MAX_SUSPECTS` are kept; the evidence's numbers say how many
connections sent mail at all. The tally is this worker's: with several
workers, each ranks by the share of the traffic it delivered itself (worker
0 for the listings).
**Which address the mail went out through**: the relay binds no source
address for its deliveries (the system picks the route's), so it does not
record one; every connection's mail is taken to have gone out through all
of `[node] public_addresses` (with one address, that one), and a listing of
any of them names the same connections.

The operators are mailed through `Notifier.alert_gateway` (template
`alert-gateway`); owners of connections are not: the operators decide.
Every incident opened or grown is logged (`gateway_incident`, WARNING); each
one opened is counted (`ugem_gateway_incidents_opened_total{cause}`).

Failures: what `IncidentService` raises (`StoreError`) ends the handling of
that change or burst, logged at ERROR (`gateway_listing_failed`,
`gateway_watch_failed`), and the watch goes on: a listing not recorded is
recorded at its next change, a burst re-arms the rule (its next threshold
opens the incident). A notice that cannot be queued never undoes the
incident (`Notifier`). Events the watch fell behind on are dropped by the
bus and counted (`ugem_events_dropped_total{observer="gateway"}`). The rule,
the tally and the verdicts seen live in this process's memory only.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ugem.core.clock import Clock
from ugem.core.config import Config
from ugem.core.errors import NotFoundError
from ugem.core.events import Event, EventBus, Outcome, Subscription
from ugem.core.log import event
from ugem.core.metrics import Metrics
from ugem.core.reply_class import BLOCKLISTED
from ugem.core.reply_tally import Counts, ReplyTally
from ugem.core.services.incidents import (
    GATEWAY_PREFIX,
    Action,
    Evidence,
    GatewayFacts,
    Incident,
    IncidentKind,
    IncidentService,
    IncidentState,
    Suspect,
)
from ugem.core.services.notices import GatewayAlert, Notifier
from ugem.core.services.reputation import Change, Listing, Standing
from ugem.core.tasks import cancel_and_wait, raise_if_cancelled
from ugem.core.throttle import ThrottleView

log = logging.getLogger(__name__)

ACTOR: Final = "reputation"  # who opens gateway incidents (the audit log's actor)
BURST_SUBJECT: Final = f"{GATEWAY_PREFIX}blocklisted-replies"
MAX_SUSPECTS: Final = 10  # connections an incident and its alert name
ANOMALY_POINTS: Final = 3  # evidence points of a throttle or detector incident; a complaint: 1
MAX_KEPT: Final = 10_000  # blocklisted replies a burst window holds at most (the newest)
FLAG_LIMIT: Final = 1000  # detector incidents read per state to flag connections


def listing_subject(address: str, zone: str) -> str:
    """The subject of the incident of `address` listed on `zone`."""
    return f"{GATEWAY_PREFIX}{address}@{zone}"


@dataclass(frozen=True)
class GatewaySettings:
    addresses: tuple[str, ...] = ()  # [node] public_addresses
    window: float = 6 * 3600.0  # seconds looked back on for suspects
    burst_replies: int = 10
    burst_domains: int = 3
    burst_window: float = 600.0
    burst_quiet: float = 3600.0

    @classmethod
    def of(cls, config: Config) -> GatewaySettings:
        rep = config.reputation
        return cls(
            tuple(config.node.public_addresses),
            rep.incident_window,
            rep.burst_replies,
            rep.burst_domains,
            rep.burst_window,
            rep.burst_quiet,
        )


# -- the burst rule (pure) -----------------------------------------------------------------


@dataclass(frozen=True)
class Burst:
    """The blocklisted replies of one burst window, when they reached the threshold."""

    ts: float  # the reply that made it
    first_ts: float  # the oldest reply counted
    replies: int
    domains: tuple[str, ...]  # destination domains, most replies first
    blocklists: tuple[tuple[str, int], ...]  # lists the replies cite and how often, most first
    armed: bool  # False: the rule had fired before, its incident may still stand


class BurstRule:
    """At least `replies` blocklisted replies (never fewer than `domains`) from at least
    `domains` destination domains within `window` seconds are a burst; then the rule
    disarms and its window empties. It arms again once `quiet` seconds pass without such a
    reply (`rearm()` arms it at once). In the replies' own time; memory: `MAX_KEPT` replies."""

    def __init__(self, replies: int, domains: int, window: float, quiet: float) -> None:
        self.domains = max(1, domains)
        self.replies = max(replies, self.domains)
        self.window = window
        self.quiet = quiet
        self.armed = True
        self._kept = max(MAX_KEPT, self.replies)
        self._seen: deque[tuple[float, str, str]] = deque()  # (ts, domain, blocklist)
        self._by_domain: Counter[str] = Counter()
        self._last: float | None = None  # the newest reply's time

    def observe(self, ts: float, domain: str, blocklist: str) -> Burst | None:
        """Count one blocklisted reply; the burst, when the window now makes one."""
        if self._last is not None and ts - self._last >= self.quiet:
            self.armed = True
        self._last = ts if self._last is None else max(self._last, ts)
        self._seen.append((ts, domain, blocklist))
        self._by_domain[domain] += 1
        while self._seen and (len(self._seen) > self._kept or self._seen[0][0] <= ts - self.window):
            self._drop()
        if len(self._seen) < self.replies or len(self._by_domain) < self.domains:
            return None
        burst = self._burst(ts)
        self._seen.clear()
        self._by_domain.clear()
        self.armed = False
        return burst

    def rearm(self) -> None:
        self.armed = True

    def _drop(self) -> None:
        _, domain, _ = self._seen.popleft()
        self._by_domain[domain] -= 1
        if not self._by_domain[domain]:
            del self._by_domain[domain]

    def _burst(self, ts: float) -> Burst:
        lists = Counter(name for _, _, name in self._seen if name)
        return Burst(
            ts,
            min(t for t, _, _ in self._seen),
            len(self._seen),
            tuple(d for d, _ in self._by_domain.most_common()),
            tuple(lists.most_common()),
            self.armed,
        )


# -- the ranking (pure) --------------------------------------------------------------------


def rank(
    counts: Mapping[str, Counts], flags: Mapping[str, str], limit: int = MAX_SUSPECTS
) -> tuple[Suspect, ...]:
    """The connections of `counts` (those with mail or complaints), most suspect first:
    share of the rejections + share of the evidence points (see the module docstring);
    `flags` says which the anomaly detector holds something against, and what."""
    rejected = sum(c.rejected for c in counts.values())
    points = {
        conn: c.complaints + (ANOMALY_POINTS if conn in flags else 0) for conn, c in counts.items()
    }
    evidence = sum(points.values())
    scored = [
        (_share(c.rejected, rejected) + _share(points[conn], evidence), conn, c)
        for conn, c in counts.items()
        if c.attempts or c.complaints
    ]
    # Equal scores are equal to 9 places, whatever the float sums' last bits say.
    scored.sort(key=lambda x: (-round(x[0], 9), -x[2].rejected, -x[2].attempts, x[1]))
    return tuple(
        Suspect(
            conn,
            round(score, 3),
            c.attempts,
            {cls: n for cls, n in c.rejections.items() if n},
            c.complaints,
            flags.get(conn, ""),
        )
        for score, conn, c in scored[:limit]
    )


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


# -- the watch -----------------------------------------------------------------------------


class GatewayWatch:
    def __init__(
        self,
        incidents: IncidentService,
        notifier: Notifier | None,
        clock: Clock,
        settings: GatewaySettings,
        *,
        throttle: ThrottleView | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.incidents = incidents
        self.notifier = notifier
        self.clock = clock
        self.settings = settings
        self.throttle = throttle
        self.metrics = metrics
        self.tally = ReplyTally(settings.window)
        s = settings
        self.rule = BurstRule(s.burst_replies, s.burst_domains, s.burst_window, s.burst_quiet)
        self._verdicts: dict[tuple[str, str], Listing] = {}  # listed or clear, as last handled
        self._burst_incident: int | None = None  # the incident the rule's last burst went to
        self._bus: EventBus | None = None
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, bus: EventBus) -> None:
        """Watch `bus`: tally every outcome and complaint, and the blocklisted replies."""
        self._bus, self._sub = bus, bus.subscribe("gateway")
        self._task = asyncio.create_task(self._run(), name="gateway-watch")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        if self._bus is not None and self._sub is not None:
            self._bus.unsubscribe(self._sub)
            self._sub = None

    async def _run(self) -> None:
        assert self._sub is not None
        while True:
            ev = await self._sub.get()
            try:
                await self.observe(ev)
            except Exception:  # the watch lives on; the rule fires again at its next burst
                self.rule.rearm()
                event(log, "gateway_watch_failed", logging.ERROR, exc_info=True)
            if self._sub.dropped and self.metrics is not None:
                self.metrics.events_dropped.labels("gateway").inc(self._sub.dropped)
                self._sub.dropped = 0
            raise_if_cancelled()  # a Redis call may have swallowed the stop

    async def observe(self, ev: Event) -> None:
        """Count one event of the bus; a burst it completes opens (or grows) its incident."""
        self.tally.observe(ev)
        if isinstance(ev, Outcome) and ev.reply_class == BLOCKLISTED:
            burst = self.rule.observe(ev.ts, _domain(ev.rcpt), ev.blocklist)
            if burst is not None:
                await self._burst(burst)

    async def on_reputation(self, changes: list[Change]) -> None:
        """The reputation service's hook: a listing or a delisting of each change."""
        for change in changes:
            after = change.after
            try:
                await self._verdict(after)
            except Exception:
                event(log, "gateway_listing_failed", logging.ERROR, address=after.address,
                      zone=after.zone, state=after.state.value, exc_info=True)  # fmt: skip

    async def suspects(self, now: float) -> tuple[tuple[Suspect, ...], dict[str, float]]:
        """The ranked connections of the window that ends at `now`, and its numbers."""
        counts = self.tally.counts(now)
        suspects = rank(counts, await self._flags(counts))
        numbers = {
            "rejections_window": float(sum(c.rejected for c in counts.values())),
            "attempts_window": float(sum(c.attempts for c in counts.values())),
            "connections_window": float(sum(1 for c in counts.values() if c.attempts)),
            "window_h": round(self.settings.window / 3600, 2),
        }
        return suspects, numbers

    # -- listings --------------------------------------------------------------------------

    async def _verdict(self, standing: Standing) -> None:
        pair = (standing.address, standing.zone)
        before = self._verdicts.get(pair)
        if standing.state == Listing.LISTED and before != Listing.LISTED:
            await self._listed(standing)
        elif standing.state == Listing.CLEAR and before == Listing.LISTED:
            await self._delisted(standing)
        if standing.state in (Listing.LISTED, Listing.CLEAR):
            self._verdicts[pair] = standing.state

    async def _listed(self, s: Standing) -> None:
        suspects, numbers = await self.suspects(s.checked_at)
        codes = f" ({', '.join(s.codes)})" if s.codes else ""
        reason = f"{s.address} is listed on {s.zone}{codes}" + (f": {s.reason}" if s.reason else "")
        evidence = Evidence(s.checked_at, Action.LISTED, reason, numbers)
        facts = GatewayFacts((s.address,), s.zone, (s.zone,), suspects)
        subject = listing_subject(s.address, s.zone)
        incident, opened = await self.incidents.record_gateway(subject, evidence, ACTOR, facts)
        self._recorded(incident, opened, evidence, "listed")
        earlier = incident.evidence[-2].action if len(incident.evidence) > 1 else None
        if opened or earlier == Action.DELISTED:  # not when only a restart forgot it
            what = f"{s.address} listed on {s.zone}"
            await self._alert(what, subject, incident, facts, evidence)

    async def _delisted(self, s: Standing) -> None:
        suspects, numbers = await self.suspects(s.checked_at)
        reason = f"{s.address} is not listed on {s.zone} any more"
        evidence = Evidence(s.checked_at, Action.DELISTED, reason, numbers)
        subject = listing_subject(s.address, s.zone)
        incident = await self.incidents.note(subject, evidence)
        if incident is not None:
            self._recorded(incident, False, evidence, "listed")
        facts = GatewayFacts((s.address,), s.zone, (s.zone,), suspects)
        await self._alert(f"{s.address} delisted from {s.zone}", subject, incident, facts, evidence)

    # -- bursts ----------------------------------------------------------------------------

    async def _burst(self, burst: Burst) -> None:
        if not burst.armed and not await self._closed(self._burst_incident):
            event(log, "gateway_burst_continues", replies=burst.replies,
                  domains=len(burst.domains), incident=self._burst_incident or "")  # fmt: skip
            return
        suspects, numbers = await self.suspects(burst.ts)
        numbers |= {
            "blocklisted_replies": float(burst.replies),
            "blocklisted_domains": float(len(burst.domains)),
            "burst_window_min": round(self.settings.burst_window / 60, 2),
        }
        evidence = Evidence(burst.ts, Action.BLOCKLISTED_REPLIES, self._why(burst), numbers)
        lists = tuple(name for name, _ in burst.blocklists)
        facts = GatewayFacts(self.settings.addresses, "", lists, suspects)
        incident, opened = await self.incidents.record_gateway(
            BURST_SUBJECT, evidence, ACTOR, facts
        )
        self._burst_incident = incident.id
        self._recorded(incident, opened, evidence, "blocklisted-replies")
        if opened:
            what = f"{burst.replies} blocklisted replies from {len(burst.domains)} domains"
            await self._alert(what, BURST_SUBJECT, incident, facts, evidence)

    def _why(self, burst: Burst) -> str:
        domains = ", ".join(burst.domains[:5]) + (", ..." if len(burst.domains) > 5 else "")
        cited = ", ".join(f"{name} ({n})" for name, n in burst.blocklists) or "none named"
        minutes = max(1, round((burst.ts - burst.first_ts) / 60))
        return (
            f"{burst.replies} replies refused our mail as blocklisted within {minutes} min, "
            f"from {len(burst.domains)} destination domains ({domains}); lists cited: {cited}"
        )

    async def _closed(self, incident_id: int | None) -> bool:
        """Whether the rule's last incident is closed (or there is none to go by)."""
        if incident_id is None:
            return True
        try:
            incident = await self.incidents.get(incident_id)
        except NotFoundError:
            return True
        return incident.state == IncidentState.CLOSED

    # -- what the others learn -------------------------------------------------------------

    async def _flags(self, counts: Mapping[str, Counts]) -> dict[str, str]:
        """What the anomaly detector holds against the connections of `counts`."""
        found: dict[str, list[str]] = {}
        if self.throttle is not None:
            for conn in counts:
                if self.throttle.throttled(conn):
                    found.setdefault(conn, []).append("throttled")
        for state in (IncidentState.OPEN, IncidentState.ACKNOWLEDGED):
            for incident in await self.incidents.list(state, limit=FLAG_LIMIT):
                conn = incident.connection
                if incident.kind == IncidentKind.CONNECTION and conn in counts:
                    found.setdefault(conn, []).append(
                        f"incident {incident.id} ({incident.action.value})"
                    )
        return {conn: ", ".join(items) for conn, items in found.items()}

    def _recorded(self, incident: Incident, opened: bool, evidence: Evidence, cause: str) -> None:
        if opened and self.metrics is not None:
            self.metrics.gateway_incidents.labels(cause).inc()
        event(
            log,
            "gateway_incident",
            logging.WARNING,
            incident=incident.id,
            subject=incident.connection,
            opened=opened,
            action=evidence.action.value,
            reason=evidence.reason,
            suspects=",".join(s.connection for s in incident.suspects[:3]),
        )

    async def _alert(
        self, what: str, subject: str, incident: Incident | None, facts: GatewayFacts,
        evidence: Evidence,
    ) -> None:  # fmt: skip
        """Mail the operators about `subject` (`incident` None: a delisting with none)."""
        if self.notifier is None:
            return
        alert = GatewayAlert(
            target=subject,
            event=what,
            incident=str(incident.id) if incident is not None else "-",
            reason=evidence.reason,
            addresses=facts.addresses,
            blocklists=facts.blocklists,
            window=_span(self.settings.window),
            suspects=tuple(s.line() for s in facts.suspects),
            evidence=tuple(evidence.lines()),
        )
        await self.notifier.alert_gateway(alert, ACTOR)


def _domain(rcpt: str) -> str:
    """The destination domain of a recipient address (lower case)."""
    return rcpt.rpartition("@")[2].strip().rstrip(".").lower() or "-"


def _span(seconds: float) -> str:
    """A window as a person says it: "6 h", "90 min"."""
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} min"
