"""The scheduler: when and where each queued message is delivered.

`Scheduler.enqueue` makes a message durable in the spool, then starts its first
attempt at once from memory, up to `max_in_flight` attempts. A scan every
`scan_interval` starts the attempts that are due (`Spool.due`): retries,
released mail, everything recovered from the spool after a restart, and mail the
in-flight cap left in the spool, for which a scan also runs as soon as the
attempts in flight fall to half the cap (as Postfix's queue manager refills its
active queue), so a backlog never waits for the interval with its deliveries
idle. An attempt groups the pending recipients by domain, routes each domain,
groups them again by route (several domains behind one next hop share one
transaction), and delivers the groups concurrently (`asyncio.gather`; a single
domain or group, the usual case, is awaited in the attempt's own task: no task
and no future for one). Delivered and bounced recipients leave the message; the
bounced ones of one attempt get one DSN (relay/queue/bounce.py) queued through
`enqueue` before the original is updated, so a crash can duplicate a bounce but
never lose one; with `own_mail` the DSN is DKIM-signed first (a signing failure
queues it unsigned). Deferred recipients stay, and the message is retried after
a back-off like Postfix's (`min_backoff`, doubling, capped at `max_backoff`,
plus up to 10% jitter fixed per message) until it is older than `queue_lifetime`
(`bounce_lifetime` for a bounce), when its remaining recipients bounce with
4.4.7 (a bounce that expires is dropped and logged).

Every reply is classified once (`ugem.core.reply_class`, with the table the node
loaded from `[reputation] reply_patterns`, read from its code and its text with the
enhanced status): each recipient's outcome event carries its class, the block list
it names and the code the detector counts it as, and is counted in
`ugem_recipients_total{outcome,destination}`, `ugem_delivery_replies_total{connection,class}`
and `ugem_destination_replies_total{destination,class}` (destination: the recipient
domain's class, `ugem.core.destinations`).
Rate-limited destinations are held back (`relay.deliver.backoff`): each route's
attempt asks `Backoff.admit` first and reports what it heard (a 4xx of class
rate-limited, a delivery) after. A route that is not admitted is not tried: its
recipients stay, no outcome is published, and the message comes back when the
destination takes mail again (plus up to POSTPONE_SPREAD of its spacing, fixed per
message, so a backlog does not come back all at once); such a postponement is no
attempt (`attempts` is not counted), and its `last_error` says so when it has none.

Every outcome published carries what the mail log shows of it (the next hop, the
enhanced status, the attempt's number, the time in the queue and the attempt's
connect and transfer times); a message held (alone, or a connection's mail at
once), released with its connection, or expired is published as a `QueueChange`
(actor "relay").

Held mail: an attempt for a message whose origin connection is suspended
holds it (reason "suspended: <id>") instead of delivering it, and a
connection becoming suspended holds all its queued mail. A connection back to
connected releases the mail held for its suspension (and for its
disconnection) and scans at once; mail an operator held for another reason
stays held. A disconnected connection's queued mail is held with reason
"disconnected: <id>": neither delivered nor dropped, for an operator to
release or purge (`ugem queue`), or released when it is connected again.

One message is never attempted twice at once (the in-flight set is excluded
from scans). An attempt whose outcome the spool cannot write (a full disk,
an I/O error) is kept in memory and written again at each scan; until every
such outcome is written, no new attempt starts and `health()` is false with
the reason (/readyz answers 503): the node never delivers what it cannot
record as delivered. (A crash in that state delivers those messages again
after the restart: a duplicate is better than a loss.) Failures never lose
mail: an attempt that fails unexpectedly leaves the message in the spool as
it was and logs the queue id; it is not retried before `min_backoff`.
`stop` lets attempts finish within a grace period and cancels the rest,
which stay in the spool and are delivered after the restart.

`pause()` (a drain: the node hands its queue to another) starts no attempt
from then on, neither from a scan nor from `enqueue`, which still makes mail
durable; the scans go on writing what the spool could not take. `idle()` says
when no attempt is in flight and every outcome is written: from then on the
spool is the whole truth of the queue and no row of it changes under a
reader. `resume()` starts attempts again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from relay.deliver import trouble
from relay.deliver.backoff import Backoff
from relay.deliver.routing import Route, RouteFailure, Router
from relay.deliver.transaction import Deliverer
from relay.deliver.trouble import RcptOutcome
from relay.queue.bounce import make_dsn
from relay.queue.message import QueuedMessage, QueueState
from relay.queue.own_mail import GatewaySigner
from relay.queue.spool import Spool
from relay.tls import domain_of
from ugem.core.clock import Clock
from ugem.core.config import DeliveryConfig
from ugem.core.errors import DeliveryError, SpoolError
from ugem.core.events import EventBus, Outcome, QueueChange, QueueEvent
from ugem.core.log import event
from ugem.core.metrics import Metrics
from ugem.core.model import Connection, ConnState
from ugem.core.registry import Registry
from ugem.core.reply_class import (
    MAX_TEXT,
    RATE_LIMITED,
    Patterns,
    ReplyClass,
    classify,
    counted_as,
)

log = logging.getLogger(__name__)

JITTER = 0.1  # a retry waits up to this fraction longer than its back-off
IN_FLIGHT_PER_SESSION = 2  # messages in flight per allowed outbound session
HOLD_STATES = (ConnState.SUSPENDED, ConnState.DISCONNECTED)
POSTPONE_SPREAD = 1.0  # a postponed message waits up to this share of the spacing more
CLASS_CACHE = 4096  # distinct replies whose class is kept (all dropped when full), each
# keyed by the first MAX_TEXT characters it is classified from: a next hop's 32 KB replies
# cost at most 4096 x MAX_TEXT characters here


@dataclass(frozen=True)
class Postponed:
    """A route's recipients not tried: `key` takes no attempt for `wait` seconds."""

    key: str
    wait: float
    spacing: float  # the destination's spacing of attempts then


T = TypeVar("T")


def retry_delay(attempts: int, min_backoff: float, max_backoff: float, key: str = "") -> float:
    """Seconds from the `attempts`-th failed attempt to the next one.

    `min_backoff` after the first, doubling after each further one, capped at
    `max_backoff`; plus a jitter of up to JITTER of it, fixed by `key` and
    `attempts` (so retries of a burst spread out, and tests can predict it).
    """
    base = min_backoff * 2.0 ** min(max(attempts - 1, 0), 64)
    jitter = _fraction(f"{key}/{attempts}") * JITTER
    return min(max_backoff, base * (1 + jitter))


def postpone_delay(postponed: Sequence[Postponed], key: str) -> float:
    """Seconds until a message whose routes were `postponed` comes back: when the first of
    them takes mail again, plus up to POSTPONE_SPREAD of its spacing, fixed by `key`."""
    spread = _fraction(f"{key}/postponed") * POSTPONE_SPREAD
    return min(p.wait + spread * p.spacing for p in postponed)


def _fraction(key: str) -> float:
    """A number in [0, 1) fixed by `key`."""
    return (zlib.crc32(key.encode()) % 1000) / 1000


def hold_reason(state: ConnState, conn_id: str) -> str:
    """The spool hold reason for mail of a connection in `state` ("suspended: <id>")."""
    return f"{state.value}: {conn_id}"


class Scheduler:
    """Schedules attempts for queued mail; also the intake the SMTP layer queues into."""

    def __init__(
        self,
        spool: Spool,
        router: Router,
        deliverer: Deliverer,
        registry: Registry,
        bus: EventBus,
        clock: Clock,
        config: DeliveryConfig,
        metrics: Metrics,
        hostname: str,
        own_mail: GatewaySigner | None = None,
        *,
        patterns: Patterns | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        """`patterns` classify the replies (None: the packaged table); `backoff` holds
        rate-limited destinations back (None: the deliverer's)."""
        self.spool = spool
        self.router = router
        self.deliverer = deliverer
        self.registry = registry
        self.bus = bus
        self.clock = clock
        self.config = config
        self.metrics = metrics
        self.hostname = hostname
        self.own_mail = own_mail  # signs the DSNs
        self.patterns = patterns
        self.backoff = deliverer.backoff if backoff is None else backoff
        self._classes: dict[tuple[int, str], ReplyClass] = {}  # (code, text) -> its class
        self.max_in_flight = config.concurrency_total * IN_FLIGHT_PER_SESSION
        self._claimed: set[str] = set()  # ids of messages with an attempt in flight
        self._tasks: set[asyncio.Task[None]] = set()
        self._cooldown: dict[str, float] = {}  # id -> no attempt before (after a fault)
        # Attempts whose outcome the spool could not record (id -> the message as it
        # should be written; rcpts empty: remove it). Never attempted again until written.
        self._unrecorded: dict[str, QueuedMessage] = {}
        self._record_error = ""
        self._scanner: asyncio.Task[None] | None = None
        # Mail left in the spool by the in-flight cap: as attempts end, a scan refills at
        # once (at half the cap), not a scan_interval later with the deliveries idle.
        self._overflowed = False
        self._refill = asyncio.Event()
        self._stopped = False
        self._paused = False  # a drain: no attempt starts (the queue goes to another node)

    # -- the intake ------------------------------------------------------------------------

    async def enqueue(self, msg: QueuedMessage) -> None:
        """Make `msg` durable (SpoolError, SpoolFullError), then attempt it from memory.

        When the scheduler is stopped or has as many attempts in flight as it
        allows, the message waits in the spool for a scan instead.
        """
        # Claimed before the commit: a scan running while the commit waits for
        # its fsync would otherwise find the message in the spool and start it
        # a second time (a duplicate at the next hop).
        self._claimed.add(msg.id)
        try:
            await self.spool.commit(msg)
        except BaseException:
            self._claimed.discard(msg.id)
            raise
        if self._may_launch() and len(self._claimed) <= self.max_in_flight:
            self._launch(msg)
        else:
            self._claimed.discard(msg.id)
            self._overflowed = True

    def backlog(self) -> int:
        return self.spool.size()

    def _may_launch(self) -> bool:
        return not (self._stopped or self._paused or self._unrecorded)

    def pause(self) -> None:
        """Start no attempt from now on (those in flight go on: see `idle`)."""
        self._paused = True

    def resume(self) -> None:
        """Start attempts again (the next scan finds what is due)."""
        self._paused = False

    def in_flight(self) -> int:
        """Attempts running now."""
        return len(self._tasks)

    def idle(self) -> bool:
        """No attempt in flight and every outcome written to the spool."""
        return not self._tasks and not self._unrecorded

    def health(self) -> tuple[bool, str]:
        """False, with the reason, while some delivery could not be recorded in the spool."""
        if not self._unrecorded:
            return True, "ok"
        count = len(self._unrecorded)
        return False, (
            f"{count} deliveries not yet recorded in the spool ({self._record_error}); "
            "delivery paused so that no message is sent twice"
        )

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Reconcile held mail with the registry, then start the periodic scan.

        Reconciling holds the mail of connections suspended or disconnected and
        releases that of connections resumed while the node was down; the
        scan's first run picks up the mail recovered from the spool.
        """
        self._stopped = False
        for conn in self.registry.all():
            await self.on_connection_change(None, conn)
        if self._scanner is None:
            self._scanner = asyncio.create_task(self._scan_loop(), name="scheduler scan")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop scanning; give attempts `grace` seconds, then cancel them (they stay queued)."""
        self._stopped = True
        if self._scanner is not None:
            self._scanner.cancel()
            await asyncio.gather(self._scanner, return_exceptions=True)
            self._scanner = None
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def drain(self) -> None:
        """Wait until no attempt is in flight (including the DSNs they queue)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _scan_loop(self) -> None:
        while True:
            try:
                await self.run_due()
            except Exception:  # the scan must outlive any fault; the mail stays queued
                event(log, "scan_failed", logging.ERROR, exc_info=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.scan_interval):
                    await self._refill.wait()
            self._refill.clear()

    async def run_due(self) -> int:
        """One scan: start an attempt for every due message not in flight; return how many."""
        now = self.clock.now()
        self._cooldown = {qid: t for qid, t in self._cooldown.items() if t > now}
        await self._write_pending()
        room = self.max_in_flight - len(self._claimed)
        started = 0
        if room > 0 and self._may_launch():
            exclude = self._claimed | self._cooldown.keys()
            due = await self.spool.due(now, room, exclude=exclude)
            self._overflowed = self._overflowed or len(due) >= room  # more may wait
            for msg in due:
                if msg.id not in self._claimed:
                    self._launch(msg)
                    started += 1
        await self._update_gauge()
        return started

    async def _update_gauge(self) -> None:
        await self.spool.counts()  # sets metrics.queue_size by state

    # -- connections -----------------------------------------------------------------------

    async def on_connection_change(self, old: Connection | None, new: Connection) -> None:
        """Hold a connection's mail when it is suspended or disconnected; release on resume.

        A spool failure is logged, not raised into the registry's reload: the
        attempt-time check still holds the mail of a suspended connection, and
        an operator can release held mail with `ugem queue release`.
        """
        was = old.state if old is not None else None
        if new.state == was:
            return
        try:
            if new.state in HOLD_STATES:
                await self._hold_connection(new)
            else:
                await self._release_connection(new)
        except SpoolError as exc:
            event(log, "hold_change_failed", logging.ERROR, connection=new.id, error=str(exc))

    async def _hold_connection(self, conn: Connection) -> None:
        reason = hold_reason(conn.state, conn.id)
        count = await self.spool.hold(connection=conn.id, reason=reason)
        event(log, "held", logging.INFO, connection=conn.id, reason=reason, messages=count)
        if count:
            self._changed("held", "", conn.id, reason, count)

    async def _release_connection(self, conn: Connection) -> None:
        """Release what its suspension or disconnection held (not what an operator held)."""
        released = 0
        for state in HOLD_STATES:
            reason = hold_reason(state, conn.id)
            released += await self.spool.release(connection=conn.id, reason=reason)
        if released:
            event(log, "released", logging.INFO, connection=conn.id, messages=released)
            self._changed("released", "", conn.id, f"{conn.id} is {conn.state.value}", released)
            await self.run_due()

    def _origin_hold(self, msg: QueuedMessage) -> str:
        """The hold reason when the message's origin connection is not connected, else ""."""
        conn = self.registry.get(msg.connection) if msg.connection else None
        if conn is None or conn.state not in HOLD_STATES:
            return ""
        return hold_reason(conn.state, conn.id)

    # -- one attempt -----------------------------------------------------------------------

    def _launch(self, msg: QueuedMessage) -> None:
        self._claimed.add(msg.id)
        task = asyncio.create_task(self._attempt(msg), name=f"attempt {msg.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attempt(self, msg: QueuedMessage) -> None:
        try:
            await self._try(msg)
        except Exception:  # the message stays in the spool as it was
            self._cooldown[msg.id] = self.clock.now() + self.config.min_backoff
            event(log, "attempt_failed", logging.ERROR, exc_info=True, queue_id=msg.id)
        finally:
            self._claimed.discard(msg.id)
            if self._overflowed and len(self._claimed) <= self.max_in_flight // 2:
                self._overflowed = False
                self._refill.set()

    async def _try(self, msg: QueuedMessage) -> None:
        reason = self._origin_hold(msg)
        if reason:
            await self.spool.hold([msg.id], reason=reason)
            event(log, "held", logging.INFO, queue_id=msg.id, reason=reason)
            self._changed("held", msg.id, msg.connection, reason)
            return
        if msg.data is None:
            loaded = await self.spool.get(msg.id, with_data=True)
            if loaded is None or loaded.data is None:
                return  # deleted meanwhile
            msg = loaded
        outcomes, postponed = await self._deliver_all(msg, msg.data or b"")
        await self._apply(msg, outcomes, postponed)

    async def _deliver_all(
        self, msg: QueuedMessage, data: bytes
    ) -> tuple[list[RcptOutcome], list[Postponed]]:
        """Route each domain, group by route, deliver the groups concurrently (those whose
        destination is backing off are postponed)."""
        by_domain = _by_domain(msg.rcpts)
        routed = await _together([self._route(domain) for domain in by_domain])
        outcomes: list[RcptOutcome] = []
        groups: dict[str, tuple[Route, list[str]]] = {}
        for rcpts, route in zip(by_domain.values(), routed, strict=True):
            if isinstance(route, RouteFailure):
                outcomes += trouble.route_failed(rcpts, route)
            else:
                groups.setdefault(route.key, (route, []))[1].extend(rcpts)
        results = await _together(
            [self._deliver(route, msg, rcpts, data) for route, rcpts in groups.values()]
        )
        postponed: list[Postponed] = []
        for result in results:
            if isinstance(result, Postponed):
                postponed.append(result)
            else:
                outcomes += result
        return outcomes, postponed

    async def _route(self, domain: str) -> Route | RouteFailure:
        try:
            return await self.router.route(domain)
        except RouteFailure as exc:
            return exc

    async def _deliver(
        self, route: Route, msg: QueuedMessage, rcpts: list[str], data: bytes
    ) -> list[RcptOutcome] | Postponed:
        """One route's recipients delivered, if its destination takes an attempt now."""
        admission = self.backoff.admit(route.key)
        if admission.wait > 0:
            wait = round(admission.wait, 3)
            event(log, "postponed", logging.DEBUG, queue_id=msg.id, route=route.key, wait=wait)
            return Postponed(route.key, admission.wait, admission.spacing)
        try:
            outcomes = await self.deliverer.deliver(route, msg.sender, rcpts, data, msg.id)
        except DeliveryError as exc:
            outcomes = trouble.attempt_failed(rcpts, exc)
        self._report(route.key, admission.epoch, outcomes)
        return outcomes

    def _report(self, key: str, epoch: int, outcomes: Sequence[RcptOutcome]) -> None:
        """Tell the back-off whether the destination rate-limited us or took mail."""
        limited = False
        for outcome in outcomes:
            reply = self._reply(outcome)
            limited = limited or (reply.temporary and reply.cls == RATE_LIMITED)
        delivered = any(outcome.kind == "delivered" for outcome in outcomes)
        self.backoff.report(key, epoch, limited, delivered)

    def _reply(self, outcome: RcptOutcome) -> ReplyClass:
        """What `outcome`'s reply says (each distinct reply classified once, while cached)."""
        said = outcome.said[:MAX_TEXT]  # all a class is read from: the cache stays small
        found = self._classes.get((outcome.code, said))
        if found is None:
            if len(self._classes) >= CLASS_CACHE:
                self._classes.clear()
            found = classify(outcome.code, said, self.patterns)
            self._classes[outcome.code, said] = found
        return found

    async def _apply(
        self,
        msg: QueuedMessage,
        outcomes: Sequence[RcptOutcome],
        postponed: Sequence[Postponed] = (),
    ) -> None:
        """Record the outcomes, bounce the failed, then remove or reschedule the message
        (the recipients of `postponed` routes stay, untried)."""
        now = self.clock.now()
        for outcome in outcomes:
            self._record(msg, outcome, now)
        settled = {o.rcpt for o in outcomes if o.kind != "deferred"}
        deferred = [o for o in outcomes if o.kind == "deferred"]
        bounced = [o for o in outcomes if o.kind == "bounced"]
        remaining = [rcpt for rcpt in msg.rcpts if rcpt not in settled]
        if remaining and self._expired(msg, now):
            bounced += self._expire(msg, remaining, deferred, now)
            remaining = []
        if bounced and not await self._bounce(msg, bounced, now):
            remaining += [o.rcpt for o in bounced]  # no DSN queued: bounce them next time
        msg.rcpts = remaining
        if remaining:
            self._next_state(msg, bool(outcomes), deferred, postponed, now)
        await self._write_outcome(msg)

    async def _write_outcome(self, msg: QueuedMessage) -> None:
        """Write an attempt's outcome: remove the message (no recipients left) or update it.

        When the spool cannot write it (a full disk, an I/O error), the message is kept
        in memory, excluded from every scan and written again by each scan: delivering
        it again before its outcome is on disk would send the same mail twice.
        """
        try:
            if msg.rcpts:
                await self.spool.update(msg)
            else:
                await self.spool.remove(msg.id)
        except SpoolError as exc:
            first = msg.id not in self._unrecorded
            self._unrecorded[msg.id] = msg
            self._record_error = str(exc)
            self.metrics.unrecorded.set(len(self._unrecorded))
            if first:
                event(log, "record_failed", logging.WARNING, queue_id=msg.id, error=str(exc))
            return
        if self._unrecorded.pop(msg.id, None) is not None:
            self.metrics.unrecorded.set(len(self._unrecorded))
            event(log, "recorded", logging.INFO, queue_id=msg.id)

    async def _write_pending(self) -> None:
        """Try again to write the outcomes the spool could not take."""
        for msg in list(self._unrecorded.values()):
            await self._write_outcome(msg)

    def _next_state(
        self,
        msg: QueuedMessage,
        tried: bool,
        deferred: Sequence[RcptOutcome],
        postponed: Sequence[Postponed],
        now: float,
    ) -> None:
        """Count the attempt (if any recipient was `tried`) and set the retry time (or the
        hold) of a message kept: its back-off's, or sooner when a postponed destination
        takes mail again sooner."""
        msg.state = QueueState.DEFERRED
        due: list[float] = []
        if tried or not postponed:
            msg.attempts += 1
            backoff = retry_delay(
                msg.attempts, self.config.min_backoff, self.config.max_backoff, msg.id
            )
            due.append(now + backoff)
        if postponed:
            due.append(now + postpone_delay(postponed, msg.id))
        msg.next_attempt = min(due)
        if deferred:
            msg.last_error = deferred[-1].text
        elif postponed and not msg.last_error:
            msg.last_error = f"not tried yet: {postponed[0].key} is backing off after rate limits"
        reason = self._origin_hold(msg)  # suspended while this attempt was in flight
        if reason:
            msg.state, msg.hold_reason = QueueState.HELD, reason
            self._changed("held", msg.id, msg.connection, reason)

    def _changed(
        self, what: QueueEvent, queue_id: str, connection: str, reason: str, count: int = 1
    ) -> None:
        """Publish a change the queue made itself (actor "relay")."""
        change = QueueChange(self.clock.now(), what, queue_id, connection, "relay", reason, count)
        self.bus.publish(change)

    def _record(
        self, msg: QueuedMessage, outcome: RcptOutcome, now: float, replied: bool = True
    ) -> None:
        """Publish, count and log (DEBUG) one recipient's outcome; `replied`: it is the reply
        of an attempt (counted by class), not a verdict of the queue's (expiry)."""
        reply = self._reply(outcome)
        self.bus.publish(
            Outcome(
                now,
                outcome.kind,
                msg.id,
                msg.connection,
                msg.client_ip,
                outcome.rcpt,
                outcome.code,
                outcome.text,
                counted_as(outcome.code, reply.cls) if msg.connection else 0,
                reply.cls,
                reply.blocklist,
                outcome.status,
                outcome.hop,
                msg.sender,
                msg.attempts + 1,
                max(0.0, now - msg.received_at),
                outcome.connect,
                outcome.transfer,
            )
        )
        domain = domain_of(outcome.rcpt)
        self.metrics.recipient(outcome.kind if replied else "expired", domain)
        if replied:
            self.metrics.delivery_reply(msg.connection, domain, reply.cls)
        if outcome.kind == "delivered":
            self.metrics.delivery_latency.observe(max(0.0, now - msg.received_at))
        event(
            log,
            outcome.kind,
            logging.DEBUG,
            queue_id=msg.id,
            rcpt=outcome.rcpt,
            code=outcome.code,
            status=outcome.status,
            hop=outcome.hop,
            text=outcome.text,
            reply_class=reply.cls,
        )

    # -- expiry and bounces ----------------------------------------------------------------

    def _expired(self, msg: QueuedMessage, now: float) -> bool:
        lifetime = self.config.bounce_lifetime if msg.is_bounce else self.config.queue_lifetime
        return now - msg.received_at >= lifetime

    def _expire(
        self,
        msg: QueuedMessage,
        remaining: Sequence[str],
        deferred: Sequence[RcptOutcome],
        now: float,
    ) -> list[RcptOutcome]:
        """The remaining recipients' 4.4.7 bounces, recorded and logged (INFO)."""
        last = {o.rcpt: o for o in deferred}
        expired = [trouble.expired(rcpt, last.get(rcpt), msg.last_error) for rcpt in remaining]
        for outcome in expired:
            self._record(msg, outcome, now, replied=False)
        event(
            log,
            "expired",
            logging.INFO,
            queue_id=msg.id,
            sender=msg.sender,
            rcpts=len(expired),
            age=round(now - msg.received_at),
            attempts=msg.attempts + 1,
            dropped=msg.is_bounce,
        )
        age = round(now - msg.received_at)
        why = f"in the queue {age} s, over its lifetime; the last error: {msg.last_error or '-'}"
        self._changed("expired", msg.id, msg.connection, why, len(expired))
        return expired

    async def _bounce(self, msg: QueuedMessage, bounced: Sequence[RcptOutcome], now: float) -> bool:
        """Queue one DSN for `bounced`; False if it could not be queued (keep them)."""
        dsn = make_dsn(msg, bounced, self.hostname, now)
        if dsn is None:
            event(log, "bounce_dropped", logging.INFO, queue_id=msg.id, rcpts=len(bounced))
            return True
        if self.own_mail is not None:
            dsn = await self.own_mail.sign(dsn)
        try:
            await self.enqueue(dsn)
        except SpoolError as exc:
            event(log, "dsn_not_queued", logging.ERROR, queue_id=msg.id, error=str(exc))
            return False
        event(log, "dsn_queued", logging.DEBUG, queue_id=msg.id, dsn_id=dsn.id)
        return True


async def _together(steps: list[Coroutine[Any, Any, T]]) -> list[T]:
    """`asyncio.gather(*steps)`; a step alone is awaited here (a task and a future less)."""
    if len(steps) == 1:
        return [await steps[0]]
    return await asyncio.gather(*steps)


def _by_domain(rcpts: Iterable[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for rcpt in rcpts:
        groups.setdefault(domain_of(rcpt), []).append(rcpt)
    return groups
