"""Enforcement: the anomaly detector inside a running node, its incidents and overrides.

`Enforcer` reads a feed (`anomaly.feed`: this process's event bus, or with
several workers or nodes the shared traffic log that carries all of theirs)
and feeds each event of a connected server's traffic (accepted messages,
per-recipient delivery outcomes, and feedback-loop complaints traced by the
gateway's own queue id: `TRUSTED_TRACE`; they reach only the detector of the
process that received them, as the shared traffic log carries trace records)
to a `Detector` in event time: the events
carry the node's clock, never the wall clock of this observer. The detector
keeps counting a connection it flagged, so the numbers behind a verdict (its
windows, the usual volume: `measure`) go into the incident's evidence and
are what an override's ceiling is compared with. What the baselines learned
outlives a restart: `save_baselines()` writes them to the store (documents
of kind "anomaly-baseline", one a connection; the node does it every few
minutes and at stop), `load_baselines()` gives them back to the detector at
start; a stored baseline that cannot be read is logged and skipped.

The detector's verdicts (anomaly.detector) are THROTTLE, SUSPEND and LIFT.
On a THROTTLE or SUSPEND verdict, first the connection's override in force
at the verdict's time (ugem.core.services.overrides):
- a **ceiling** the last hour's traffic does not exceed withholds the
  verdict: audited `anomaly.within_ceiling`, no incident, no alert. While
  withheld, each new message is checked against the ceiling and the verdict
  is acted on as soon as the traffic crosses it; otherwise the detector
  watches the connection afresh after `WITHHELD_S` of event time, or at the
  override's end. Above the ceiling, the verdict is acted on as usual, the
  crossing added to its reason.
- an **exemption**: handled as in shadow mode, the incident's action
  "exempted", audited `anomaly.exempted`; never throttled nor suspended.
A THROTTLE in mode "enforce" puts the connection on the node's throttle
board (ugem.core.throttle; a connection not connected any more is left alone):
its cap is `ugem.core.throttle.cap` of what its baseline expects at the verdict's
time, and after each event of a throttled connection the board learns
whether its recipients of the last 5 minutes (`Features.window(5)`: all its
traffic this feed carries) reach the cap and, if so, until when should no
more mail come (`over_until`: a few window counts, O(1) an event); the relay
then answers its MAIL FROM 451 4.7.1 while it is over. It opens an incident
(or adds the verdict to the open one) with action "throttled" and the cap
among the numbers, audits `anomaly.throttled`, logs `anomaly_throttled` at
WARNING and counts `ugem_detector_throttles_total{mode="enforce"}`; the
gauge `ugem_throttled_connections` counts the board. Neither the owner nor
the operators are mailed (the incident, the audit log, the log line and the
metrics tell the operators). A LIFT ends the throttle: the open incident
(if any: a lift opens none) gets evidence "throttle-lifted", audited
`anomaly.throttle_lifted`, logged at INFO. A SUSPEND of a throttled
connection ends its throttle and goes on as below (the incident then holds
the throttle, then the suspension); so does a resume, and anything that
makes the detector watch the connection afresh. Mode "shadow" (or an
exemption) throttles nothing: "would-throttle" (or "exempted") in a shadow
incident, audited `anomaly.would_throttle` (or `anomaly.exempted`), logged at
WARNING, counted mode="shadow", no alert.
On a SUSPEND, mode "enforce" opens an incident (or adds the verdict to the
open one: ugem.core.services.incidents) and suspends the connection through
`ConnectionService.suspend` with actor "detector" and the reason "abnormal
traffic: <reason> (incident N)", the reason ending with the blocklists remote
servers named and the complaints recipients made in the last hours
(anomaly.cited), as they are what the suspension protects the gateway from:
the store, the audit log, the owner's notice
and the operators' alert; the relay then answers 451 at MAIL FROM and the
scheduler holds its queued mail. It counts it in
`ugem_detector_suspensions_total{mode="enforce"}`. Mode "shadow" suspends
nothing and notifies no owner: it opens the incident in mode shadow, logs
"would have suspended" at WARNING, audits `anomaly.would_suspend` with actor
"detector", counts mode="shadow", and alerts the operators ("would have
suspended", the evidence, the incident) when the incident is new; the
connection is watched afresh an hour of event time later. Every incident
opened is counted in `ugem_incidents_opened_total{mode}`. A connection that
is not connected any more (suspended by an operator or another worker
meanwhile) is not suspended again; once resumed, it is watched afresh (the
registry's change listener).

While the store is unreachable (the claim or a record fails with
`StoreError`), a verdict is acted on in this node alone at once (in mode
"enforce": a throttle on its board, a suspension laid over its registry view,
`Registry.hold_locally`, logged `anomaly_suspended_locally` at WARNING) and
recorded when the store is back (`anomaly.pending`: one incident, one
suspension, one notice, overrides then checked; the local hold then lifts).
The shared feed meanwhile judges this process's own events here alone.

Failures never reach the SMTP path: a failed step is logged and the
detector watches the connection afresh, so its next verdict tries again;
events this observer fell behind on are dropped by the bus and counted in
`ugem_events_dropped_total{observer="anomaly"}`. With a shared feed every
worker and node runs the detector over the same whole traffic and reaches
the same verdicts; the first to claim a verdict (`Feed.claim`) acts on it;
as every process relays on its own throttle board, a throttle and its lift
change every process's board, and only the claimer records them. With the
local feed each worker judges (and throttles) its own share only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from typing import Any, Final

from anomaly.baseline import Baseline
from anomaly.cited import Cited
from anomaly.detector import LIFT, SUSPEND, THROTTLE, Detector, Verdict
from anomaly.features import MINUTE_S, Features
from anomaly.feed import Feed, LocalFeed
from anomaly.pending import PendingVerdicts
from anomaly.trace_reader import BOUNCED, DEFERRED, DELIVERED
from ugem.core.errors import ConfigError, ConflictError, StoreError
from ugem.core.events import Accepted, Complained, Event, EventBus, Outcome
from ugem.core.log import event
from ugem.core.metrics import Metrics
from ugem.core.model import Connection, ConnState
from ugem.core.services.connections import ConnectionService
from ugem.core.services.incidents import CAP, Action, Evidence, Incident, IncidentService, Mode
from ugem.core.services.notices import Addressee, Notifier
from ugem.core.services.overrides import Override, OverrideKind, OverrideService
from ugem.core.tasks import cancel_and_wait, raise_if_cancelled
from ugem.core.throttle import ThrottleBoard

log = logging.getLogger(__name__)

MODES: Final = ("enforce", "shadow", "off")
ACTOR: Final = "detector"
WOULD_SUSPEND: Final = "anomaly.would_suspend"
EXEMPTED: Final = "anomaly.exempted"
WITHIN_CEILING: Final = "anomaly.within_ceiling"
THROTTLED: Final = "anomaly.throttled"
THROTTLE_LIFTED: Final = "anomaly.throttle_lifted"
WOULD_THROTTLE: Final = "anomaly.would_throttle"
THROTTLE_WINDOW: Final = 5  # minutes of traffic held against a throttled connection's cap
# Complaints the detector counts: those traced by the gateway's own Received line (its queue
# id); a DKIM d= or a sender's domain in a report is anyone's to write.
TRUSTED_TRACE: Final = frozenset({"queue_id"})
SHADOW_REARM_S: Final = 3600.0  # event-time seconds before shadow mode watches a connection again
WITHHELD_S: Final = 900.0  # event-time seconds a verdict under a ceiling waits for a crossing
OUTCOME_KINDS: Final = {"delivered": DELIVERED, "deferred": DEFERRED, "bounced": BOUNCED}
BASELINE_DOC: Final = "anomaly-baseline"  # store documents of learned baselines
CLAIM_S: Final = 3600.0  # seconds a claimed verdict stays claimed (shared feed)
SHADOW_WHY: Final = 'shadow mode ([anomaly] mode = "shadow")'


@dataclass(frozen=True, slots=True)
class _Watch:
    """A connection the detector set aside until `until` (event time); a verdict withheld
    under `ceiling` is acted on as soon as the traffic crosses it."""

    until: float
    withheld: Verdict | None = None
    ceiling: Override | None = None


class Enforcer:
    def __init__(
        self,
        mode: str,
        bus: EventBus,
        connections: ConnectionService,
        metrics: Metrics,
        detector: Detector | None = None,
        *,
        incidents: IncidentService | None = None,
        overrides: OverrideService | None = None,
        feed: Feed | None = None,
        throttle: ThrottleBoard | None = None,
    ) -> None:
        if mode not in MODES[:2]:
            raise ConfigError("anomaly.mode", mode, "an enforcer runs in enforce or shadow")
        self.mode = mode
        self.detector = detector if detector is not None else Detector(keep_counting=True)
        store, audit, clock = connections.store, connections.audit, connections.clock
        self.incidents = incidents or IncidentService(store, audit, clock)
        self.overrides = overrides or OverrideService(store, audit, clock)
        self._feed = feed if feed is not None else LocalFeed(bus, metrics)
        self._connections = connections
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None
        self._watch: dict[str, _Watch] = {}
        self.cited = Cited()  # blocklists named and complaints made, for the reasons
        self.board = throttle if throttle is not None else ThrottleBoard()
        self.pending = PendingVerdicts(self._claim, self._record_pending, self._settle)

    async def start(self) -> None:
        await self.load_baselines()
        await self._feed.start()
        self._connections.registry.on_change(self._on_change)
        self._task = asyncio.create_task(self._run(), name="anomaly-enforcer")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        await self.pending.stop()
        await self._feed.stop()

    async def save_baselines(self) -> int:
        """Write every connection's learned baseline to the store; how many were written."""
        store = self._connections.store
        states = self.detector.baselines()
        for conn_id, state in states.items():
            await store.doc_put(BASELINE_DOC, conn_id, json.dumps(state, separators=(",", ":")))
        return len(states)

    async def load_baselines(self) -> int:
        """Give the detector the baselines the store keeps; how many it took."""
        states: dict[str, dict[str, Any]] = {}
        for conn_id, text in await self._connections.store.doc_list(BASELINE_DOC):
            try:
                state = json.loads(text)
                Baseline.restored(state, 0.0)  # readable?
            except ValueError as exc:  # JSON's errors are ValueErrors too
                event(
                    log, "baseline_unreadable", logging.WARNING, connection=conn_id, error=str(exc)
                )
                continue
            states[conn_id] = state
        self.detector.restore(states)
        return len(states)

    async def _run(self) -> None:
        while True:
            verdict = self.observe(await self._feed.get())
            if verdict is None:
                continue
            try:
                await self._decide(verdict)
            except Exception as exc:  # the observer lives on; the next verdict tries again
                self._forget(verdict.connection, "its verdict could not be acted on")
                self._failed(verdict, exc)
            raise_if_cancelled()  # a Redis call may have swallowed the stop

    async def _decide(self, verdict: Verdict) -> None:
        """Act on `verdict`: with a shared feed every worker and node reaches the same verdict
        at the same event, and only the first to claim it records it. A suspension only that
        one acts on (the store carries it to the others, which watch the connection afresh
        later, as it does); a throttle or its lift changes every process's board, as each
        relays on its own."""
        key = f"verdict:{verdict.connection}:{verdict.action}:{verdict.ts!r}"
        claimed: bool | None = None
        try:
            claimed = await self._feed.claim(key, CLAIM_S)
            if claimed or verdict.action != SUSPEND:
                await self.act(verdict, record=claimed)
                return
        except StoreError as exc:  # the store is down: act here alone, record it later
            await self._act_here(verdict, str(exc))
            if verdict.action != LIFT:
                await self.pending.add(key, verdict, claimed=bool(claimed))
            return
        self._unthrottle(verdict.connection, "suspended")
        self._watch[verdict.connection] = _Watch(verdict.ts + WITHHELD_S)
        event(log, "anomaly_verdict_claimed_elsewhere", connection=verdict.connection)

    async def _act_here(self, verdict: Verdict, why: str) -> None:
        """Act on `verdict` in this node alone while the store cannot take it (mode
        "enforce"): a throttle or its lift on this node's board, a suspension laid over the
        registry's view (`Registry.hold_locally`). Overrides are not known here: the verdict
        is checked against them when it is recorded, and the local hold then lifts."""
        conn_id = verdict.connection
        if verdict.action == LIFT:
            await self._lift(verdict, record=False)
        elif self.mode != "enforce":
            pass
        elif verdict.action == THROTTLE:
            await self._throttle(verdict, record=False)
        else:
            self._unthrottle(conn_id, "suspended")
            reason = f"abnormal traffic: {verdict.reason} (suspended by this node alone: {why})"
            held = await self._connections.registry.hold_locally(conn_id, reason)
            event(
                log,
                "anomaly_suspended_locally",
                logging.WARNING,
                connection=conn_id,
                reason=verdict.reason,
                held=held,
            )

    async def _claim(self, key: str) -> bool:
        return await self._feed.claim(key, CLAIM_S)

    async def _record_pending(self, verdict: Verdict) -> None:
        """Record a verdict of the outage now that the store is back (`anomaly.pending`)."""
        await self.act(verdict, record=True)

    async def _settle(self, verdict: Verdict) -> None:
        """End what was done in this node alone for `verdict`: the store's state serves."""
        if verdict.action == SUSPEND:
            await self._connections.registry.release_local(verdict.connection)

    def _failed(self, verdict: Verdict, exc: Exception) -> None:
        conn_id, mode = verdict.connection, self.mode
        event(
            log,
            "anomaly_action_failed",
            logging.ERROR,
            connection=conn_id,
            mode=mode,
            error=str(exc),
        )

    def observe(self, ev: Event) -> Verdict | None:
        """Feed one event to the detector; its verdict, if any. Inbound mail is not watched;
        a complaint counts only when traced by this gateway's queue id (TRUSTED_TRACE)."""
        if isinstance(ev, Complained):
            if ev.connection and ev.attributed_by in TRUSTED_TRACE:
                self.cited.complaint(ev.ts, ev.connection)
                return self.detector.complained(ev.ts, ev.connection)
            return None
        if not isinstance(ev, Accepted | Outcome) or not ev.connection:
            return None
        self._metrics.detector_events.inc()
        conn_id = ev.connection
        if isinstance(ev, Accepted):
            verdict = self.detector.accepted(
                ev.ts, conn_id, ev.sender, list(ev.rcpts), ev.ip, ev.size
            )
        else:
            code = ev.counted or ev.code  # what the reply's text says (ugem.core.reply_class)
            self.cited.reply(ev.ts, conn_id, ev.blocklist)
            kind = OUTCOME_KINDS[ev.event]
            verdict = self.detector.outcome(ev.ts, conn_id, kind, code, ev.rcpt)
        if verdict is None and self._watch and (watch := self._watch.get(conn_id)) is not None:
            verdict = self._rewatch(conn_id, watch, ev.ts)
        if self.board.throttled(conn_id):
            self._track(conn_id)
        return verdict

    def _track(self, conn_id: str) -> None:
        """Tell the board whether throttled `conn_id` is over its cap now, and until when."""
        limit = self.board.cap(conn_id)
        traffic = self.detector.traffic(conn_id)
        if limit is not None and traffic is not None:
            self.board.over(conn_id, over_until(traffic[0], limit))

    def _rewatch(self, conn_id: str, watch: _Watch, ts: float) -> Verdict | None:
        """Watch `conn_id` afresh when its time came; a withheld verdict whose ceiling the
        traffic crossed, to act on now."""
        if ts >= watch.until:
            del self._watch[conn_id]
            self._forget(conn_id, "watched afresh")
            return None
        if watch.withheld is None or watch.ceiling is None:
            return None
        if not watch.ceiling.exceeded(*self._hour(conn_id)):
            return None
        del self._watch[conn_id]
        return dataclasses.replace(watch.withheld, ts=ts)

    async def act(self, verdict: Verdict, record: bool = True) -> None:
        """Throttle or suspend (enforce), or record what would have been done (shadow,
        exempt), or withhold the verdict (under a ceiling), as the connection's override
        says; end the throttle on a LIFT. Without `record` (another process records it),
        only what this process knows changes: its throttle board, what it watches."""
        if verdict.action == LIFT:
            await self._lift(verdict, record)
            return
        if verdict.action == SUSPEND:
            self._unthrottle(verdict.connection, "suspended")  # the detector throttles no more
        if cited := self.cited.describe(verdict.connection, verdict.ts):
            verdict = dataclasses.replace(verdict, reason=f"{verdict.reason}; {cited}")
        override = await self.overrides.in_force(verdict.connection, verdict.ts)
        if override is not None and override.kind == OverrideKind.CEILING:
            messages, recipients = self._hour(verdict.connection)
            if not override.exceeded(messages, recipients):
                await self._withhold(verdict, override, messages, recipients, record)
                return
            crossed = (
                f"{messages} messages, {recipients} recipients in the last hour: above the "
                f"planned ceiling of {override.ceiling()} (override {override.id})"
            )
            verdict = dataclasses.replace(verdict, reason=f"{verdict.reason}; {crossed}")
        exempt = override if override is not None and override.kind == OverrideKind.EXEMPT else None
        if verdict.action == THROTTLE:
            await self._throttle_verdict(verdict, exempt, record)
        elif exempt is not None:
            await self._watch_only(verdict, Action.EXEMPTED, f"exempt: {exempt.describe()}")
        elif self.mode == "shadow":
            await self._watch_only(verdict, Action.WOULD_SUSPEND, SHADOW_WHY)
        else:
            await self._suspend(verdict)

    async def _throttle_verdict(
        self, verdict: Verdict, exempt: Override | None, record: bool
    ) -> None:
        if exempt is not None:
            await self._would_throttle(verdict, Action.EXEMPTED, record)
        elif self.mode == "shadow":
            await self._would_throttle(verdict, Action.WOULD_THROTTLE, record)
        else:
            await self._throttle(verdict, record)

    async def _throttle(self, verdict: Verdict, record: bool) -> None:
        """Hold the connection near its usual rate: its mail over the cap gets 451 4.7.1."""
        conn_id = verdict.connection
        conn = self._connections.registry.get(conn_id)
        if conn is None or conn.state != ConnState.CONNECTED:
            _not_throttled(conn_id, conn.state.value if conn else "unknown")
            return
        limit = self.detector.cap(conn_id, verdict.ts)
        self.board.throttle(conn_id, limit)
        self._track(conn_id)
        self._gauge()
        if not record:
            return
        incident, opened = await self._incident(
            verdict, Mode.ENFORCE, Action.THROTTLED, {CAP: limit}
        )
        if opened:
            await self._alert_throttled(verdict, incident, limit)
        details = {"ts": verdict.ts, "incident": incident.id, "cap_5m": limit}
        await self._connections.audit.record(
            ACTOR, THROTTLED, conn_id, verdict.reason, details=details
        )
        self._metrics.detector_throttles.labels("enforce").inc()
        event(
            log,
            "anomaly_throttled",
            logging.WARNING,
            connection=conn_id,
            reason=verdict.reason,
            incident=incident.id,
            cap_5m=limit,
            score=round(verdict.score, 2),
        )

    async def _alert_throttled(self, verdict: Verdict, incident: Incident, limit: float) -> None:
        """The operators' alert of a throttle that opened an incident (not the owner)."""
        if (found := self._notifier_and_addressee(verdict.connection)) is not None:
            notifier, to = found
            lines = incident.evidence[-1].lines()
            await notifier.alert_throttled(
                to, ACTOR, verdict.reason, str(incident.id), round(limit), lines
            )

    async def _would_throttle(self, verdict: Verdict, action: Action, record: bool) -> None:
        """Shadow mode, or an exemption: a throttle recorded, nothing refused, no alert."""
        if record:
            self._metrics.detector_throttles.labels("shadow").inc()
            await self._record_watch_only(verdict, action, WOULD_THROTTLE)

    async def _record_watch_only(
        self, verdict: Verdict, action: Action, would: str
    ) -> tuple[Incident, bool]:
        """What shadow mode or an exemption records of a verdict it does not act on: a
        WARNING line, the incident (mode shadow) and the audit entry `would` (or
        EXEMPTED); (the incident, whether it was opened)."""
        conn_id, reason = verdict.connection, verdict.reason
        event(
            log,
            would.replace(".", "_"),
            logging.WARNING,
            connection=conn_id,
            reason=reason,
            action=action.value,
        )
        incident, opened = await self._incident(verdict, Mode.SHADOW, action)
        audited = EXEMPTED if action == Action.EXEMPTED else would
        details = {"ts": verdict.ts, "incident": incident.id, "verdict": verdict.action}
        await self._connections.audit.record(ACTOR, audited, conn_id, reason, details=details)
        return incident, opened

    async def _lift(self, verdict: Verdict, record: bool) -> None:
        """The throttle ends: the traffic went `LIFT_S` without throttling evidence."""
        conn_id = verdict.connection
        watch = self._watch.get(conn_id)
        if watch is not None and watch.withheld is not None and watch.withheld.action == THROTTLE:
            del self._watch[conn_id]  # a throttle withheld under a ceiling lapses with it
        if not self.board.lift(conn_id):
            return  # not throttled here: shadow mode, an exemption, a ceiling, suspended
        self._gauge()
        if not record:
            return
        evidence = Evidence(verdict.ts, Action.LIFTED, verdict.reason, self._numbers(verdict))
        incident = await self.incidents.note(conn_id, evidence)
        number = None if incident is None else incident.id
        details = {"ts": verdict.ts, "incident": number}
        await self._connections.audit.record(
            ACTOR, THROTTLE_LIFTED, conn_id, verdict.reason, details=details
        )
        event(
            log,
            "anomaly_throttle_lifted",
            logging.INFO,
            connection=conn_id,
            reason=verdict.reason,
            incident=number or "",
        )

    def _unthrottle(self, conn_id: str, why: str) -> None:
        """End a throttle without a LIFT (a suspension, a resume, a failure)."""
        if self.board.lift(conn_id):
            self._gauge()
            event(log, "anomaly_throttle_ended", connection=conn_id, why=why)

    def _forget(self, conn_id: str, why: str) -> None:
        """Watch `conn_id` afresh: the detector forgets its verdicts, the board its throttle."""
        self.detector.resume(conn_id)
        self._unthrottle(conn_id, why)

    def _gauge(self) -> None:
        self._metrics.throttled_connections.set(len(self.board))

    async def _suspend(self, verdict: Verdict) -> None:
        conn_id = verdict.connection
        registry = self._connections.registry
        conn = registry.get(conn_id)
        connected = conn is not None and conn.state == ConnState.CONNECTED
        if conn is None or not (connected or registry.held_locally(conn_id)):
            _already(conn_id, conn.state.value if conn else "unknown")
            return
        incident, _ = await self._incident(verdict, Mode.ENFORCE, Action.SUSPENDED)
        reason = f"abnormal traffic: {verdict.reason} (incident {incident.id})"
        try:
            await self._connections.suspend(conn_id, reason, ACTOR)
        except ConflictError:  # suspended (or disconnected) by someone else meanwhile
            _already(conn_id, "not connected")
            return
        self._metrics.detector_suspensions.labels("enforce").inc()
        event(
            log,
            "anomaly_suspended",
            logging.WARNING,
            connection=conn_id,
            reason=verdict.reason,
            incident=incident.id,
        )

    async def _watch_only(self, verdict: Verdict, action: Action, why_not: str) -> None:
        """Shadow mode, or an exemption: an incident and an alert, no suspension."""
        self._watch[verdict.connection] = _Watch(verdict.ts + SHADOW_REARM_S)
        self._metrics.detector_suspensions.labels("shadow").inc()
        incident, opened = await self._record_watch_only(verdict, action, WOULD_SUSPEND)
        if opened:
            await self._alert(verdict, incident, why_not)

    async def _withhold(
        self,
        verdict: Verdict,
        override: Override,
        messages: int,
        recipients: int,
        record: bool = True,
    ) -> None:
        conn_id = verdict.connection
        until = min(verdict.ts + WITHHELD_S, override.ends_at or math.inf)
        self._watch[conn_id] = _Watch(until, verdict, override)
        if not record:
            return
        event(
            log,
            "anomaly_within_ceiling",
            connection=conn_id,
            override=override.id,
            messages_60m=messages,
            recipients_60m=recipients,
        )
        details = {
            "ts": verdict.ts,
            "override": override.id,
            "ceiling": override.ceiling(),
            "messages_60m": messages,
            "recipients_60m": recipients,
        }
        await self._connections.audit.record(
            ACTOR, WITHIN_CEILING, conn_id, verdict.reason, details=details
        )

    async def _incident(
        self, verdict: Verdict, mode: Mode, action: Action, extra: dict[str, float] | None = None
    ) -> tuple[Incident, bool]:
        numbers = self._numbers(verdict) | (extra or {})
        evidence = Evidence(verdict.ts, action, verdict.reason, numbers)
        incident, opened = await self.incidents.record(verdict.connection, mode, evidence, ACTOR)
        if opened:
            self._metrics.incidents_opened.labels(mode.value).inc()
        return incident, opened

    async def _alert(self, verdict: Verdict, incident: Incident, why_not: str) -> None:
        if (found := self._notifier_and_addressee(verdict.connection)) is not None:
            notifier, to = found
            lines = incident.evidence[0].lines()
            await notifier.alert_would_suspend(
                to, ACTOR, verdict.reason, str(incident.id), why_not, lines
            )

    def _notifier_and_addressee(self, conn_id: str) -> tuple[Notifier, Addressee] | None:
        """Who mails an alert about `conn_id`, and about whom; None when nobody can."""
        notifier = self._connections.notifier
        conn = self._connections.registry.get(conn_id)
        if notifier is None or conn is None:
            return None
        return notifier, Addressee.of(conn)

    def _numbers(self, verdict: Verdict) -> dict[str, float]:
        traffic = self.detector.traffic(verdict.connection)
        return {} if traffic is None else measure(*traffic, verdict.ts)

    def _hour(self, conn_id: str) -> tuple[int, int]:
        """(messages, recipients) of `conn_id` in the last 60 minutes of its traffic."""
        traffic = self.detector.traffic(conn_id)
        if traffic is None:
            return 0, 0
        hour = traffic[0].window(60)
        return hour.msgs, hour.rcpts

    async def _on_change(self, old: Connection | None, new: Connection) -> None:
        """A resumed connection is watched afresh; one not connected is throttled no more."""
        if new.state != ConnState.CONNECTED:
            self._unthrottle(new.id, new.state.value)
        elif old is not None and old.state != ConnState.CONNECTED:
            self._forget(new.id, "resumed")


def over_until(features: Features, limit: float) -> float:
    """When (event time) the last `THROTTLE_WINDOW` minutes of `features` would hold fewer
    than `limit` recipients should no more mail come; 0.0 when they do now. A minute from
    now the window has lost its oldest minute: it holds the last four minutes' traffic,
    and so on; at most five windows of at most five minutes each are counted."""
    if features.window(THROTTLE_WINDOW).rcpts < limit:
        return 0.0
    for gone in range(1, THROTTLE_WINDOW):
        if features.window(THROTTLE_WINDOW - gone).rcpts < limit:
            return (features.minute + gone) * MINUTE_S
    return (features.minute + THROTTLE_WINDOW) * MINUTE_S


def measure(features: Features, baseline: Baseline, ts: float) -> dict[str, float]:
    """The numbers of an incident's evidence (named as ugem.core.services.incidents.NUMBERS)."""
    numbers: dict[str, float] = {}
    for minutes in (5, 60):
        w = features.window(minutes)
        counts = {
            "messages": w.msgs,
            "recipients": w.rcpts,
            "null_sender": w.null,
            "new_senders": w.new_senders,
            "deliveries": w.outcomes,
            "bounced": w.bounced,
            "unknown_recipients": w.invalid,
            "deferred": w.deferred,
        }
        numbers |= {f"{name}_{minutes}m": float(n) for name, n in counts.items()}
    domains, senders = features.distinct(5)
    mean, spread, warm = baseline.expected(ts)
    return numbers | {
        "recipient_domains_5m": float(domains),
        "senders_5m": float(senders),
        "top_pair_5m": float(features.top_pair),
        "usual_recipients_5m": round(mean, 1),
        "usual_spread_5m": round(spread, 1),
        "baseline_warm": 1.0 if warm else 0.0,
    }


def _already(conn_id: str, state: str) -> None:
    event(log, "anomaly_not_suspended_again", logging.INFO, connection=conn_id, state=state)


def _not_throttled(conn_id: str, state: str) -> None:
    event(log, "anomaly_not_throttled", logging.INFO, connection=conn_id, state=state)
