"""Outbound SMTP sessions: opened to a route's hops, pooled per route key, reused, closed.

`SessionPool.open(route, queue_id, need)` answers a new `Session` with the
first hop of the route that gives one, or `Unreachable` (the failure to report
and its hop) when none does; `take_idle(dest, need)` answers a pooled session
and `release(dest, session, reusable)` takes one back. `destination(key)` holds
a concurrency slot of a route key while one attempt runs. What it promises:

- hops are tried in the route's order until one gives a session (connect,
  greeting and EHLO failures move on to the next hop; an EHLO refused with
  5xx is followed by HELO); when hops fail differently, a TLS requirement not
  met (`TlsRequired`) is the failure reported, as it is what the operator
  must act on; when the route has no hop, 451 4.4.4;
- STARTTLS is used when offered and `[delivery] starttls = "opportunistic"`,
  without certificate verification. A refused STARTTLS (e.g. 454) continues in
  plain text on the same connection; a failed handshake reconnects to the same
  hop once without STARTTLS (opportunistic TLS must not make mail
  undeliverable; that retry is logged);
- a `Need` of verified TLS (`relay.deliver.requirements`) gets a session only
  when STARTTLS verified the hop's certificate for its name (`Hop.tls_name`,
  against `tls_ca_file` or the system's CAs), whatever `starttls` says. A hop
  that offers no STARTTLS or refuses it (4.7.4), whose handshake or
  certificate fails (4.7.5), or whose MX host the MTA-STS policy does not allow
  (4.7.5; not even connected to) raises TlsRequired before anything else is
  sent, and gets no plain retry. Under a testing policy a hop is first tried
  that way; when it falls short the usual session is opened instead, marked
  with what fell short (`Session.shortfall`);
- sessions are pooled per route key: reused for up to
  `messages_per_connection` messages, closed after `idle_timeout` idle seconds
  (on the injected clock, swept on a loop timer and on each take) or at once
  after any error. A pooled session is taken only when it gives what the
  transaction's `Need` says, and is not probed first: a connection the peer
  closed meanwhile is the transaction's to find, before anything is sent;
- at most `concurrency_per_destination` sessions per route key, fewer while a
  rate-limit reply holds the destination back (`relay.deliver.backoff`: its
  `limit(key)` is asked at each entry; a limit raised meanwhile is taken up at
  the next release), and `concurrency_total` in all (a session's place is taken
  before connecting, so sessions opened at the same time cannot overshoot the
  limit); idle sessions of other destinations are closed to make room.
  `metrics.outbound_sessions` counts open sessions;
- a session is closed with QUIT (waiting at most QUIT_TIMEOUT seconds) when it
  is alive and clean, else its connection is aborted at once.

Timeouts: `connect_timeout` for the TCP connect and the greeting (aiosmtplib
uses one timeout for both), `command_timeout` for EHLO, HELO and STARTTLS.

How it fails: a hop's failure (one of `SESSION_ERRORS`, or TlsRequired) is
logged (DEBUG; INFO when it could not give the TLS required) and never raised:
`open` answers Unreachable. Anything else (a bug) propagates, the session's
place given back. `_TlsFailed` carries a failed opportunistic handshake to its
plain retry and never leaves this module.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, cast

import aiosmtplib

from relay.deliver.backoff import Backoff
from relay.deliver.requirements import Need, tls_trouble
from relay.deliver.routing import Hop, Route
from relay.deliver.smtp_client import SESSION_ERRORS, PipelinedProtocol, client_tls_context
from relay.deliver.trouble import NO_HOP, TLS_FAILED, TLS_NOT_GIVEN
from relay.tls import TlsInfo, negotiated, verified_context
from ugem.core.clock import Clock
from ugem.core.config import DeliveryConfig
from ugem.core.errors import RouteFailure, TlsRequired
from ugem.core.log import event
from ugem.core.metrics import Metrics

log = logging.getLogger(__name__)

QUIT_TIMEOUT = 5.0  # seconds to wait for the reply to QUIT when closing politely
REAP_MIN_DELAY = 0.05  # seconds; floor of the idle-session timer
# What one hop may fail with: the next hop is tried.
_HOP_ERRORS: tuple[type[Exception], ...] = (*SESSION_ERRORS, TlsRequired)


@dataclass(eq=False)
class Session:
    """One session with a hop: what its TLS gives, and how much it was used."""

    smtp: aiosmtplib.SMTP
    protocol: PipelinedProtocol  # smtp's, adopted
    name: str  # the hop as "host:port", for outcomes and logs
    mx: str = ""  # the name its certificate is checked against (`Hop.tls_name`)
    tls: bool = False
    verified: bool = False  # the certificate was checked for the hop's name
    checked: bool = False  # opened under an MTA-STS policy in testing mode
    shortfall: str = ""  # then: why it does not meet the policy ("": it does)
    tls_info: TlsInfo | None = None
    pipelining: bool = False
    messages: int = 0
    idle_since: float = 0.0
    retired: bool = False


class Slots:
    """Concurrency slots whose number `limit()` says at each hand-out (it may change meanwhile).

    Entering takes a free slot at once when nobody waits, else waits its turn (first come,
    first served). Leaving hands the freed slot to the next waiter directly, and as many
    more as a raised limit allows: one wake-up a slot, never every waiter to look again
    (with hundreds of attempts queued for one destination that was quadratic: issue 17's
    500 connections). Cancellation while waiting takes no slot; a waiter cancelled after
    it was handed one passes it on.
    """

    def __init__(self, limit: Callable[[], int]) -> None:
        self._limit = limit
        self.held = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def __aenter__(self) -> None:
        if not self._waiters and self.held < self._limit():
            self.held += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # resolved by _hand_out, which took the slot for it
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed a slot, then cancelled: the next one gets it
            else:
                with suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._release()

    def _release(self) -> None:
        self.held -= 1
        self._hand_out()

    def _hand_out(self) -> None:
        """Give free slots to the waiters in their order."""
        waiters = self._waiters
        while waiters and self.held < self._limit():
            waiter = waiters.popleft()
            if not waiter.done():
                self.held += 1
                waiter.set_result(None)


@dataclass(eq=False)
class Destination:
    """One route key: its concurrency slots and its idle sessions (oldest first)."""

    slots: Slots
    idle: list[Session] = field(default_factory=list)
    users: int = 0


@dataclass(frozen=True)
class Unreachable:
    """No hop of a route gave a session; `cause` is the failure to report, `hop` its hop."""

    cause: BaseException
    hop: str


class _TlsFailed(Exception):
    """The STARTTLS handshake (or the EHLO after it) failed; the connection is gone."""


class SessionPool:
    def __init__(
        self,
        config: DeliveryConfig,
        helo_name: str,
        metrics: Metrics,
        clock: Clock,
        verify: ssl.SSLContext | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        """`verify` is the context of verified sessions (None: made at the first use);
        `backoff` lowers a destination's concurrency (None: always the configured one)."""
        self.config = config
        self.backoff = backoff
        self.helo_name = helo_name
        self.metrics = metrics
        self.clock = clock
        self._total = asyncio.Semaphore(config.concurrency_total)
        self._dests: dict[str, Destination] = {}
        self._open = 0
        self._closing: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.TimerHandle | None = None
        self._closed = False
        self._tls = client_tls_context()
        self._verify = verify

    @property
    def open_sessions(self) -> int:
        """Outbound sessions open now (in use or idle)."""
        return self._open

    @asynccontextmanager
    async def destination(self, key: str) -> AsyncIterator[Destination]:
        """Route `key`'s pool, with one of its concurrency slots and one of the total."""
        dest = self._dests.get(key)
        if dest is None:
            dest = self._dests[key] = Destination(Slots(self._limit(key)))
        dest.users += 1
        try:
            async with dest.slots, self._total:
                yield dest
        finally:
            dest.users -= 1
            self._forget_if_unused(key, dest)

    def _limit(self, key: str) -> Callable[[], int]:
        """What route `key`'s concurrency is, asked at each entry."""
        backoff, fixed = self.backoff, self.config.concurrency_per_destination
        if backoff is None:
            return lambda: fixed
        return lambda: min(fixed, backoff.limit(key))

    async def close(self) -> None:
        """Close idle sessions (QUIT) and wait for closings in progress."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for key, dest in list(self._dests.items()):
            while dest.idle:
                self._retire(dest.idle.pop(), polite=True)
            self._forget_if_unused(key, dest)
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    # -- opening sessions ------------------------------------------------------------------

    async def open(self, route: Route, queue_id: str, need: Need) -> Session | Unreachable:
        """The first hop of the route that gives a session, else what to report.

        The session's place under `concurrency_total` is taken before connecting,
        so sessions being opened at the same time cannot overshoot the limit.
        When hops fail differently, a TLS requirement not met is the failure
        reported (it is what the operator must act on).
        """
        self._make_room()
        self._open += 1
        last = Unreachable(RouteFailure(*NO_HOP, "the route has no hop"), "")
        try:
            for hop in route.hops:
                try:
                    return await self._connect(hop, queue_id, need)
                except _HOP_ERRORS as exc:
                    self._log_connect_failed(queue_id, hop, exc)
                    if isinstance(exc, TlsRequired) or not isinstance(last.cause, TlsRequired):
                        last = Unreachable(exc, str(hop))
        except BaseException:
            self._open -= 1
            raise
        self._open -= 1
        return last

    def _log_connect_failed(self, queue_id: str, hop: Hop, exc: BaseException) -> None:
        """DEBUG for a hop that failed; INFO when it could not give the TLS required."""
        if isinstance(exc, TlsRequired):
            name, level, error = "tls_required_failed", logging.INFO, exc.message
        else:
            name, level, error = "connect_failed", logging.DEBUG, f"{type(exc).__name__}: {exc}"
        event(log, name, level, queue_id=queue_id, hop=str(hop), error=error)

    async def _connect(self, hop: Hop, queue_id: str, need: Need) -> Session:
        if need.secure:  # verified TLS or nothing: never the plain retry below
            need.check_mx(hop)
            return await self._handshake(hop, starttls=True, need=need)
        if need.report:
            return await self._checked(hop, queue_id, need)
        return await self._opportunistic(hop, queue_id)

    async def _checked(self, hop: Hop, queue_id: str, need: Need) -> Session:
        """Testing mode: a session as the policy wants it, else the usual one, marked with
        what fell short."""
        try:
            need.check_mx(hop)
            session = await self._handshake(hop, starttls=True, need=need)
        except TlsRequired as exc:
            session = await self._opportunistic(hop, queue_id)
            session.shortfall = exc.message
        session.checked = True
        return session

    async def _opportunistic(self, hop: Hop, queue_id: str) -> Session:
        """STARTTLS when offered and configured, unverified; a failed handshake is retried
        once in plain text."""
        try:
            return await self._handshake(hop, self.config.starttls == "opportunistic")
        except _TlsFailed as exc:
            event(
                log,
                "tls_failed",
                logging.DEBUG,
                queue_id=queue_id,
                hop=str(hop),
                error=str(exc.__cause__ or exc),
                retry="plain",
            )
            return await self._handshake(hop, starttls=False)

    async def _handshake(self, hop: Hop, starttls: bool, need: Need | None = None) -> Session:
        """A session with the hop; with `need`, STARTTLS verified for its name or TlsRequired."""
        smtp = aiosmtplib.SMTP(
            hostname=hop.host,
            port=hop.port,
            local_hostname=self.helo_name,
            timeout=self.config.command_timeout,
            start_tls=False,
            validate_certs=False,
        )
        await smtp.connect(timeout=self.config.connect_timeout)
        self.metrics.outbound_sessions.inc()
        try:
            if smtp.protocol is None:
                raise aiosmtplib.SMTPServerDisconnected("Connection lost after the greeting")
            protocol = PipelinedProtocol.adopt(smtp.protocol)
            await self._ehlo(smtp)
            if need is not None:
                await self._require_tls(smtp, hop, need)
            tls = need is not None or (
                starttls and smtp.supports_extension("starttls") and await self._starttls(smtp)
            )
        except BaseException:
            smtp.close()
            self.metrics.outbound_sessions.dec()
            raise
        return Session(
            smtp,
            protocol,
            str(hop),
            mx=hop.tls_name,
            tls=tls,
            verified=need is not None,
            tls_info=negotiated(smtp.get_transport_info("ssl_object")) if tls else None,
            pipelining=smtp.supports_extension("pipelining"),
        )

    async def _ehlo(self, smtp: aiosmtplib.SMTP) -> None:
        """EHLO, or HELO when EHLO is refused with 5xx."""
        timeout = self.config.command_timeout
        try:
            await smtp.ehlo(hostname=self.helo_name, timeout=timeout)
        except aiosmtplib.SMTPHeloError as exc:
            if not (500 <= exc.code < 600 and smtp.is_connected):
                raise
            await smtp.helo(hostname=self.helo_name, timeout=timeout)

    async def _starttls(self, smtp: aiosmtplib.SMTP) -> bool:
        """True once the session is encrypted; False if STARTTLS was refused (stay plain)."""
        try:
            await smtp.starttls(tls_context=self._tls, timeout=self.config.command_timeout)
        except aiosmtplib.SMTPResponseException:
            if smtp.is_connected:
                return False
            raise
        except SESSION_ERRORS as exc:
            raise _TlsFailed(f"STARTTLS failed: {exc}") from exc
        try:
            await self._ehlo(smtp)
        except SESSION_ERRORS as exc:
            raise _TlsFailed(f"EHLO after STARTTLS failed: {exc}") from exc
        return True

    async def _require_tls(self, smtp: aiosmtplib.SMTP, hop: Hop, need: Need) -> None:
        """STARTTLS with the hop's certificate verified for its name, then EHLO again;
        TlsRequired (nothing else sent) when the hop cannot do that."""
        where = need.where(hop)
        if not smtp.supports_extension("starttls"):
            raise TlsRequired(TLS_NOT_GIVEN, f"{where} offers no STARTTLS")
        try:
            await smtp.starttls(
                tls_context=self._verified(),
                server_hostname=hop.tls_name,
                timeout=self.config.command_timeout,
            )
        except aiosmtplib.SMTPResponseException as exc:
            raise TlsRequired(
                TLS_NOT_GIVEN, f"{where} refused STARTTLS: {exc.code} {exc.message}"
            ) from exc
        except SESSION_ERRORS as exc:
            raise TlsRequired(TLS_FAILED, f"{where}: {tls_trouble(exc)}") from exc
        await self._ehlo(smtp)

    def _verified(self) -> ssl.SSLContext:
        """The context of verified sessions (the system's CAs are read at the first use)."""
        if self._verify is None:
            self._verify = verified_context(self.config.tls_ca_file)
        return self._verify

    # -- the pool --------------------------------------------------------------------------

    def take_idle(self, dest: Destination, need: Need) -> Session | None:
        """The most recently used idle session still connected, not expired and giving
        what `need` says; dead ones met on the way are closed.

        It is not probed (no RSET or NOOP): a connection the peer closed is
        found by the transaction itself, before anything is sent.
        """
        now = self.clock.monotonic()
        for session in reversed(list(dest.idle)):
            if not session.smtp.is_connected or self._expired(session, now):
                dest.idle.remove(session)
                self._retire(session, polite=True)
            elif need.accepts(session):
                dest.idle.remove(session)
                return session
        return None

    def release(self, dest: Destination, session: Session, reusable: bool) -> None:
        """A session back after a transaction: kept idle if `reusable` and due, else closed."""
        keep = (
            reusable
            and not self._closed
            and self.config.idle_timeout > 0
            and session.messages < self.config.messages_per_connection
        )
        if not keep:
            self._retire(session, polite=reusable)
            return
        session.idle_since = self.clock.monotonic()
        dest.idle.append(session)
        self._schedule_reap(self.config.idle_timeout)

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.idle_since >= self.config.idle_timeout

    def _make_room(self) -> None:
        """Close the oldest idle sessions of any destination while at the total limit."""
        while self._open >= self.config.concurrency_total:
            idle = [
                (d.idle[0].idle_since, i, d) for i, d in enumerate(self._dests.values()) if d.idle
            ]
            if not idle:
                return
            dest = min(idle)[2]
            self._retire(dest.idle.pop(0), polite=True)

    def _retire(self, session: Session, polite: bool) -> None:
        """Stop counting a session and close it: QUIT first when `polite` and alive."""
        if session.retired:
            return
        session.retired = True
        self._open -= 1
        self.metrics.outbound_sessions.dec()
        if polite and session.smtp.is_connected:
            self._background(self._quit(session.smtp))
        else:
            # abort, not close: close() waits to flush text a stalled hop may never read,
            # holding the socket and the buffered message for ever
            if session.smtp.transport is not None:  # (uvloop's are no WriteTransport subclass)
                cast(asyncio.WriteTransport, session.smtp.transport).abort()
            session.smtp.close()

    async def _quit(self, smtp: aiosmtplib.SMTP) -> None:
        try:
            await smtp.quit(timeout=min(QUIT_TIMEOUT, self.config.command_timeout))
        except SESSION_ERRORS:
            pass
        finally:
            smtp.close()

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _schedule_reap(self, delay: float) -> None:
        if self._reaper is None:
            loop = asyncio.get_running_loop()
            self._reaper = loop.call_later(max(delay, REAP_MIN_DELAY), self._reap)

    def _reap(self) -> None:
        """Close idle sessions past `idle_timeout`; run again while any stay idle."""
        self._reaper = None
        now = self.clock.monotonic()
        next_due: float | None = None
        for key, dest in list(self._dests.items()):
            for session in [s for s in dest.idle if self._expired(s, now)]:
                dest.idle.remove(session)
                self._retire(session, polite=True)
            for session in dest.idle:
                due = session.idle_since + self.config.idle_timeout - now
                next_due = due if next_due is None else min(next_due, due)
            self._forget_if_unused(key, dest)
        if next_due is not None:
            self._schedule_reap(next_due)

    def _forget_if_unused(self, key: str, dest: Destination) -> None:
        if dest.users == 0 and not dest.idle and self._dests.get(key) is dest:
            del self._dests[key]
