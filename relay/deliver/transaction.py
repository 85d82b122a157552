"""Outbound SMTP: one message to the recipients behind one route, over a reused session.

`Deliverer.deliver(route, sender, rcpts, data, queue_id)` returns one
`RcptOutcome` per recipient and never raises for a delivery failure; all
classification is `relay.deliver.trouble`'s. What it promises:

- hops are tried in the route's order until one gives a session (connect,
  greeting and EHLO failures move on to the next hop); when none does, every
  recipient is deferred with the last hop's error;
- STARTTLS is used when offered and `[delivery] starttls = "opportunistic"`,
  without certificate verification. A refused STARTTLS (e.g. 454) continues in
  plain text on the same connection; a failed handshake reconnects to the same
  hop once without STARTTLS (opportunistic TLS must not make mail
  undeliverable; that retry is logged);
- recipients of `[delivery] tls_required_domains` go in a transaction of their
  own, only over a session whose STARTTLS verified the hop's certificate for
  its name (`Hop.tls_name`, against `tls_ca_file` or the system's CAs),
  whatever `starttls` says. A hop that offers no STARTTLS or refuses it
  (4.7.4), or whose handshake or certificate fails (4.7.5), gets nothing, not
  even MAIL FROM, and no plain retry: the next hop is tried, and when none
  qualifies those recipients are deferred with a 451 naming the domain, the
  hop and the failure (logged at INFO). A plain or unverified pooled session
  never carries them;
- MTA-STS (RFC 8461, `relay.deliver.mta_sts`, `[delivery] mta_sts`) applies to MX
  routes only (`Route.mx_domain`; an MX route carries one domain's
  recipients), its policy looked up before the attempt (through a
  `DnsCache` of the deliverer's own): under a policy of mode enforce, the recipients go the way of
  tls_required_domains above, and a hop whose MX host matches none of the
  policy's mx patterns is not even connected to (451 4.7.5); each attempt
  so blocked is counted (`metrics.mta_sts_failures`, mode enforce). Under
  mode testing (or any mode with `mta_sts = "testing-only"`) a hop is first
  tried that way, and when it falls short the mail goes as usual over a new
  session (opportunistic STARTTLS); each transaction over such a session is
  logged at WARNING with the queue id, the domain and what would have failed,
  and counted (mode testing). tls_required_domains wins over a testing
  policy. A policy lookup that fails unexpectedly defers the recipients (4.3.0);
- MAIL FROM carries SIZE= when offered, SMTPUTF8 when an address is not ASCII
  and it is offered (when it is not: the non-ASCII recipients, or all if the
  sender is one, bounce 5.6.7), BODY=8BITMIME when the text has 8-bit bytes and
  it is offered (8-bit text is sent as is otherwise). A message larger than the
  hop's announced SIZE bounces 5.3.4 without being sent. Addresses go on the
  wire exactly as given, in angle brackets; one with a control character is
  never sent (a ValueError, so an internal error: deferred 4.3.0);
- when the hop offers PIPELINING (RFC 2920), MAIL, every RCPT and DATA go out
  in one write and their replies are read in order; without it, one command
  at a time, and no RCPT after a refused MAIL, no DATA without an accepted
  RCPT;
- each RCPT reply decides that recipient alone; the text is sent only after a
  354 to DATA with a recipient accepted, and the reply to its end decides all
  accepted ones (a refused DATA decides them instead). A DATA reply when no
  recipient was accepted decides nothing (a 354 then gets an empty text).
  Recipients left without a reply when the connection fails get that failure.
  The text goes out byte for byte, dot-stuffed (`relay.deliver.smtp_client.dot_stuff`): it must be
  CRLF-only, as the relay's accepted text is;
- a transaction that did not end with the end of the text (refused MAIL, no
  recipient accepted, refused DATA) is closed with RSET; a session whose RSET
  fails, that timed out, lost its connection or heard a 421 is closed;
- sessions are pooled per route key: reused for up to
  `messages_per_connection` messages, closed after `idle_timeout` idle seconds
  (on the injected clock, swept on a loop timer and on each take) or at once
  after any error. A reused session is not probed first: if its connection
  fails before the first reply of the transaction (the peer closed it
  meanwhile), nothing was sent, and the message goes once over a new session;
- at most `concurrency_per_destination` sessions per route key and
  `concurrency_total` in all; idle sessions of other destinations are closed
  to make room. `metrics.outbound_sessions` counts open sessions.

Timeouts: `connect_timeout` for the TCP connect and the greeting (aiosmtplib
uses one timeout for both), `command_timeout` for every other reply,
including each reply of a pipelined group and the end of DATA. One DEBUG line
per attempt carries the queue id, the hop and its TLS (version, cipher,
whether verified). An unexpected error defers the recipients (4.3.0) and is
logged with its traceback.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import aiosmtplib
from aiosmtplib import SMTPResponse

from relay.deliver import trouble
from relay.deliver.mta_sts import ENFORCE, NONE, TESTING, MtaSts, StsPolicy
from relay.deliver.routing import DnsCache, Hop, Route, RouteFailure
from relay.deliver.smtp_client import (
    END_OF_DATA,
    SESSION_ERRORS,
    PipelinedProtocol,
    client_tls_context,
    dot_stuff,
    envelope_commands,
)
from relay.deliver.trouble import RcptOutcome
from relay.tls import RequiredTls, TlsInfo, domain_of, negotiated, verified_context
from ugem.core.clock import Clock
from ugem.core.config import DeliveryConfig
from ugem.core.log import event
from ugem.core.metrics import Metrics

log = logging.getLogger(__name__)

QUIT_TIMEOUT = 5.0  # seconds to wait for the reply to QUIT when closing politely
REAP_MIN_DELAY = 0.05  # seconds; floor of the idle-session timer
START_INPUT = 354  # the reply to DATA that asks for the text
CLOSING = 421  # the hop is closing the session
_RSET = b"RSET\r\n"


@dataclass(eq=False)
class _Session:
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


@dataclass(eq=False)
class _Destination:
    """One route key: its concurrency slots and its idle sessions (oldest first)."""

    slots: asyncio.Semaphore
    idle: list[_Session] = field(default_factory=list)
    users: int = 0


@dataclass
class _Plan:
    """What a transaction sends on this session, and what is refused before sending."""

    options: list[bytes]
    encoding: str
    refused: dict[str, RcptOutcome]


@dataclass(frozen=True)
class _Need:
    """What the session of a transaction must give: verified TLS for `domains` (none:
    any session will do), and under an MTA-STS `policy` a hop among its MX hosts.
    With `report` (testing mode) a session that falls short is used and reported."""

    domains: tuple[str, ...] = ()
    policy: StsPolicy | None = None
    report: bool = False

    @property
    def secure(self) -> bool:
        """Verified TLS or nothing."""
        return bool(self.domains) and not self.report

    def where(self, hop: Hop) -> str:
        """The start of a failure's text: what requires TLS, and the hop."""
        if self.policy is not None:
            why = f"TLS required by the MTA-STS policy of {self.policy.domain}"
        else:
            why = f"TLS required for {', '.join(self.domains)}"
        return f"{why}: next hop {hop.tls_name}"

    def accepts(self, session: _Session) -> bool:
        """Whether an idle session may carry the transaction."""
        if not self.domains:
            return True
        if self.report:
            return session.checked
        return session.verified and (self.policy is None or self.policy.allows(session.mx))


_ANY = _Need()


class _NoSession(Exception):
    """No hop of a route gave a session; `cause` is the last hop's error."""

    def __init__(self, cause: BaseException, hop: str) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.hop = hop


class _TlsFailed(Exception):
    """The STARTTLS handshake (or the EHLO after it) failed; the connection is gone."""


class TlsRequired(aiosmtplib.SMTPResponseException):
    """A hop cannot give the verified TLS a recipient's domain requires.

    A local 451 verdict, classified by `relay.deliver.trouble` like the reply it reads
    as ("451 4.7.4 TLS required for ..."): deferred, never bounced.
    """

    def __init__(self, status: str, text: str) -> None:
        super().__init__(451, f"{status} {text}")


def _tls_trouble(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not trusted: {exc.verify_message}"
    return f"TLS handshake failed: {type(exc).__name__}: {exc}"


class _Stale(Exception):
    """A reused session's connection failed before any reply: nothing was sent."""


def _size_limit(smtp: aiosmtplib.SMTP) -> int:
    value = smtp.esmtp_extensions.get("size", "").strip()
    return int(value) if value.isdigit() else 0


def plan_transaction(
    smtp: aiosmtplib.SMTP, hop: str, sender: str, rcpts: Sequence[str], data: bytes
) -> _Plan:
    """ESMTP parameters for MAIL FROM, and the recipients this hop cannot take at all."""
    limit = _size_limit(smtp)
    if limit and len(data) > limit:
        refused = {r: trouble.too_big(r, len(data), limit, hop) for r in rcpts}
        return _Plan([], "ascii", refused)
    options: list[bytes] = []
    if smtp.supports_extension("size"):
        options.append(b"SIZE=%d" % len(data))
    if not data.isascii() and smtp.supports_extension("8bitmime"):
        options.append(b"BODY=8BITMIME")
    needs_utf8 = not (sender.isascii() and all(r.isascii() for r in rcpts))
    if needs_utf8 and smtp.supports_extension("smtputf8"):
        return _Plan([*options, b"SMTPUTF8"], "utf-8", {})
    if not needs_utf8:
        return _Plan(options, "ascii", {})
    unsendable = rcpts if not sender.isascii() else [r for r in rcpts if not r.isascii()]
    return _Plan(options, "ascii", {r: trouble.utf8_not_offered(r, hop) for r in unsendable})


def _is_ok(code: int) -> bool:
    return 200 <= code < 300


_KINDS = ("delivered", "deferred", "bounced")


class Deliverer:
    def __init__(
        self,
        config: DeliveryConfig,
        helo_name: str,
        metrics: Metrics,
        clock: Clock,
        mta_sts: MtaSts | None = None,
    ) -> None:
        """`mta_sts` looks policies up (default: one on the config's DNS and CA file);
        it is not used when `config.mta_sts` is "off"."""
        self.config = config
        self.helo_name = helo_name
        self.metrics = metrics
        self.clock = clock
        self._total = asyncio.Semaphore(config.concurrency_total)
        self._dests: dict[str, _Destination] = {}
        self._open = 0
        self._closing: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.TimerHandle | None = None
        self._closed = False
        self._tls = client_tls_context()
        self._required = RequiredTls.of(config.tls_required_domains)
        needs_ca = bool(self._required) or bool(config.tls_ca_file)
        self._verify = verified_context(config.tls_ca_file) if needs_ca else None
        self._sts: MtaSts | None = None
        if config.mta_sts != "off":
            self._sts = mta_sts or MtaSts(
                DnsCache(config, clock), clock, metrics, config.tls_ca_file
            )

    @property
    def open_sessions(self) -> int:
        """Outbound sessions open now (in use or idle)."""
        return self._open

    async def deliver(
        self, route: Route, sender: str, rcpts: Sequence[str], data: bytes, queue_id: str
    ) -> list[RcptOutcome]:
        """One outcome per recipient, in order; never raises for delivery failures."""
        try:
            policy = await self._policy(route)
        except Exception as exc:  # a bug must not lose mail, nor send it around the policy
            return self._internal_error(queue_id, route, list(rcpts), exc)
        groups = self._groups(rcpts, policy)
        outcomes: list[RcptOutcome] = []
        for group, need in groups:
            outcomes += await self._deliver(route, sender, group, data, queue_id, need)
        if len(groups) == 1:
            return outcomes
        by_rcpt = {outcome.rcpt: outcome for outcome in outcomes}
        return [by_rcpt[rcpt] for rcpt in rcpts]

    async def _policy(self, route: Route) -> StsPolicy | None:
        """The MTA-STS policy of an MX route's domain, unless there is none to apply."""
        if self._sts is None or not route.mx_domain:
            return None
        policy = await self._sts.policy(route.mx_domain)
        return None if policy is None or policy.mode == NONE else policy

    def _enforces(self, policy: StsPolicy) -> bool:
        return policy.mode == ENFORCE and self.config.mta_sts == "enforce"

    def _groups(
        self, rcpts: Sequence[str], policy: StsPolicy | None
    ) -> list[tuple[list[str], _Need]]:
        """The recipients split by what their sessions must give, one transaction each."""
        strict = self._required.recipients(rcpts)
        if policy is not None and (self._enforces(policy) or not strict):
            report = not self._enforces(policy)
            return [(list(rcpts), _Need((policy.domain,), policy, report))]
        if not strict:
            return [(list(rcpts), _ANY)]
        chosen = set(strict)
        rest = [rcpt for rcpt in rcpts if rcpt not in chosen]
        domains = tuple(sorted({domain_of(rcpt) for rcpt in strict}))
        return [(strict, _Need(domains)), (rest, _ANY)]

    async def _deliver(
        self,
        route: Route,
        sender: str,
        rcpts: list[str],
        data: bytes,
        queue_id: str,
        need: _Need,
    ) -> list[RcptOutcome]:
        """`deliver` for recipients whose sessions must all give what `need` says."""
        if not rcpts:
            return []
        dest = self._dests.get(route.key)
        if dest is None:
            dest = self._dests[route.key] = _Destination(
                asyncio.Semaphore(self.config.concurrency_per_destination)
            )
        dest.users += 1
        try:
            async with dest.slots, self._total:
                return await self._attempt(route, dest, sender, rcpts, data, queue_id, need)
        except Exception as exc:  # a bug must not lose mail: defer, log the traceback
            return self._internal_error(queue_id, route, rcpts, exc)
        finally:
            dest.users -= 1
            self._forget_if_unused(route.key, dest)

    def _internal_error(
        self, queue_id: str, route: Route, rcpts: list[str], exc: Exception
    ) -> list[RcptOutcome]:
        """Every recipient deferred (4.3.0); the error is logged with its traceback."""
        event(
            log,
            "delivery_error",
            logging.ERROR,
            exc_info=True,
            queue_id=queue_id,
            route=route.key,
            error=f"{type(exc).__name__}: {exc}",
        )
        return [trouble.internal_error(rcpt, exc) for rcpt in rcpts]

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

    # -- one attempt -----------------------------------------------------------------------

    async def _attempt(
        self,
        route: Route,
        dest: _Destination,
        sender: str,
        rcpts: list[str],
        data: bytes,
        queue_id: str,
        need: _Need,
    ) -> list[RcptOutcome]:
        """On an idle session if there is one that gives what `need` says (a new one if it
        turns out stale), else on a new one."""
        session = self._take_idle(dest, need)
        if session is not None:
            try:
                outcomes = await self._run(dest, session, sender, rcpts, data, reused=True)
            except _Stale as exc:
                event(
                    log,
                    "stale_session",
                    logging.DEBUG,
                    queue_id=queue_id,
                    hop=session.name,
                    error=str(exc),
                )
            else:
                self._log_attempt(queue_id, route, session.name, session, True, outcomes)
                self._report(queue_id, need, session)
                return outcomes
        try:
            session = await self._open_session(route, queue_id, need)
        except _NoSession as exc:
            self._log_attempt(queue_id, route, exc.hop, error=str(exc.cause))
            if need.policy is not None and isinstance(exc.cause, TlsRequired):
                self.metrics.mta_sts_failures.labels(ENFORCE).inc()
            return trouble.session_failed(rcpts, exc.cause, exc.hop)
        outcomes = await self._run(dest, session, sender, rcpts, data, reused=False)
        self._log_attempt(queue_id, route, session.name, session, False, outcomes)
        self._report(queue_id, need, session)
        return outcomes

    def _report(self, queue_id: str, need: _Need, session: _Session) -> None:
        """Testing mode: a transaction over a session that falls short of the policy."""
        if need.policy is None or not session.shortfall:
            return
        self.metrics.mta_sts_failures.labels(TESTING).inc()
        event(
            log,
            "mta_sts_testing_failure",
            logging.WARNING,
            queue_id=queue_id,
            domain=need.policy.domain,
            hop=session.name,
            would_fail=session.shortfall,
        )

    async def _run(
        self,
        dest: _Destination,
        session: _Session,
        sender: str,
        rcpts: list[str],
        data: bytes,
        reused: bool,
    ) -> list[RcptOutcome]:
        """One transaction; the session goes back to the pool after it, or is closed."""
        reusable = False
        try:
            outcomes, reusable = await self._transaction(session, sender, rcpts, data, reused)
        finally:
            self._release(dest, session, reusable)
        return outcomes

    def _log_attempt(
        self,
        queue_id: str,
        route: Route,
        hop: str,
        session: _Session | None = None,
        reused: bool = False,
        outcomes: Sequence[RcptOutcome] = (),
        error: str = "",
    ) -> None:
        """The DEBUG line of one attempt (built only when DEBUG is on)."""
        if not log.isEnabledFor(logging.DEBUG):
            return
        fields: dict[str, Any] = {"connected": session is not None, "reused": reused}
        if session is None:
            fields["error"] = error
        else:
            fields["tls"] = session.tls
            fields["verified"] = session.verified
            if session.tls_info is not None:
                fields["tls_version"] = session.tls_info.version
                fields["tls_cipher"] = session.tls_info.cipher
            fields.update((kind, _count(outcomes, kind)) for kind in _KINDS)
        event(log, "attempt", logging.DEBUG, queue_id=queue_id, route=route.key, hop=hop, **fields)

    async def _transaction(
        self, session: _Session, sender: str, rcpts: list[str], data: bytes, reused: bool
    ) -> tuple[list[RcptOutcome], bool]:
        """(outcomes in order, whether the session may be reused); _Stale if `reused`
        and the connection failed before the first reply."""
        plan = plan_transaction(session.smtp, session.name, sender, rcpts, data)
        results = dict(plan.refused)
        todo = [r for r in dict.fromkeys(rcpts) if r not in results]
        clean = True
        if todo:
            commands = envelope_commands(sender, todo, plan.options, plan.encoding)
            replies, error = await self._envelope(session, commands)
            session.messages += 1
            if reused and not replies and isinstance(error, ConnectionError):
                raise _Stale(f"{type(error).__name__}: {error}")
            clean = await self._conclude(session, todo, replies, error, data, results)
        return [results[r] for r in rcpts], clean and session.smtp.is_connected

    async def _envelope(
        self, session: _Session, commands: list[bytes]
    ) -> tuple[list[SMTPResponse], Exception | None]:
        """The replies to MAIL, RCPTs and DATA: sent in one write when the hop offers
        PIPELINING, else one by one without what a refusal made pointless."""
        timeout = self.config.command_timeout
        if session.pipelining:
            return await session.protocol.exchange(b"".join(commands), len(commands), timeout)
        replies: list[SMTPResponse] = []
        for n, command in enumerate(commands):
            if replies and not _is_ok(replies[0].code):
                break  # MAIL refused: no RCPT, no DATA
            if n == len(commands) - 1 and not any(_is_ok(r.code) for r in replies[1:]):
                break  # no recipient accepted: no DATA
            got, error = await session.protocol.exchange(command, 1, timeout)
            replies += got
            if error is not None:
                return replies, error
        return replies, None

    async def _conclude(
        self,
        session: _Session,
        rcpts: list[str],
        replies: list[SMTPResponse],
        error: Exception | None,
        data: bytes,
        results: dict[str, RcptOutcome],
    ) -> bool:
        """Outcomes from the envelope's replies, then the text or RSET; whether the
        session is clean (no transaction open, no error, no 421)."""
        hop = session.name
        accepted: list[str] = []
        if replies and not _is_ok(replies[0].code):
            _record(results, trouble.session_reply(rcpts, replies[0].code, replies[0].message, hop))
        else:
            accepted = _recipients(rcpts, replies[1:], hop, results)
        if error is not None:
            _record(results, trouble.session_failed(_undecided(rcpts, results), error, hop))
            return False
        clean = all(reply.code != CLOSING for reply in replies)
        data_reply = replies[len(rcpts) + 1] if len(replies) > len(rcpts) + 1 else None
        go_ahead = data_reply is not None and data_reply.code == START_INPUT
        if accepted and go_ahead:
            return clean and await self._send_text(session, accepted, data, results)
        if accepted:
            _record(results, _data_refused(accepted, data_reply, hop))
        return clean and await self._abandon(session, go_ahead)

    async def _send_text(
        self, session: _Session, accepted: list[str], data: bytes, results: dict[str, RcptOutcome]
    ) -> bool:
        """The text after a 354; its final reply decides every accepted recipient."""
        final, error = await session.protocol.exchange(
            dot_stuff(data), 1, self.config.command_timeout
        )
        if error is not None:
            _record(results, trouble.session_failed(accepted, error, session.name))
            return False
        reply = final[0]
        _record(results, trouble.session_reply(accepted, reply.code, reply.message, session.name))
        return reply.code != CLOSING

    async def _abandon(self, session: _Session, go_ahead: bool) -> bool:
        """End a transaction whose text is not sent: an empty text after a 354 (RFC 2920
        3.1: the hop must not deliver it), else RSET. True if the session is clean."""
        command = END_OF_DATA if go_ahead else _RSET
        replies, _ = await session.protocol.exchange(command, 1, self.config.command_timeout)
        return bool(replies) and (go_ahead or _is_ok(replies[0].code))

    # -- opening sessions ------------------------------------------------------------------

    async def _open_session(self, route: Route, queue_id: str, need: _Need) -> _Session:
        """The first hop of the route that gives a session; _NoSession if none does.

        The session's place under `concurrency_total` is taken before connecting,
        so sessions being opened at the same time cannot overshoot the limit.
        When hops fail differently, a TLS requirement not met is the failure
        reported (it is what the operator must act on).
        """
        self._make_room()
        self._open += 1
        last = _NoSession(RouteFailure(451, "4.4.4", "the route has no hop"), "")
        try:
            for hop in route.hops:
                try:
                    return await self._connect(hop, queue_id, need)
                except SESSION_ERRORS as exc:
                    self._log_connect_failed(queue_id, hop, exc)
                    if isinstance(exc, TlsRequired) or not isinstance(last.cause, TlsRequired):
                        last = _NoSession(exc, str(hop))
        except BaseException:
            self._open -= 1
            raise
        self._open -= 1
        raise last

    def _log_connect_failed(self, queue_id: str, hop: Hop, exc: BaseException) -> None:
        """DEBUG for a hop that failed; INFO when it could not give the TLS required."""
        if isinstance(exc, TlsRequired):
            name, level, error = "tls-required-failed", logging.INFO, exc.message
        else:
            name, level, error = "connect-failed", logging.DEBUG, f"{type(exc).__name__}: {exc}"
        event(log, name, level, queue_id=queue_id, hop=str(hop), error=error)

    async def _connect(self, hop: Hop, queue_id: str, need: _Need) -> _Session:
        if need.secure:  # verified TLS or nothing: never the plain retry below
            self._check_mx(hop, need)
            return await self._handshake(hop, starttls=True, need=need)
        if need.report:
            return await self._checked(hop, queue_id, need)
        return await self._opportunistic(hop, queue_id)

    async def _checked(self, hop: Hop, queue_id: str, need: _Need) -> _Session:
        """Testing mode: a session as the policy wants it, else the usual one, marked with
        what fell short."""
        try:
            self._check_mx(hop, need)
            session = await self._handshake(hop, starttls=True, need=need)
        except TlsRequired as exc:
            session = await self._opportunistic(hop, queue_id)
            session.shortfall = exc.message
        session.checked = True
        return session

    def _check_mx(self, hop: Hop, need: _Need) -> None:
        """TlsRequired (4.7.5) when the hop's MX host matches none of the policy's patterns."""
        if need.policy is not None and not need.policy.allows(hop.tls_name):
            patterns = ", ".join(need.policy.mx)
            raise TlsRequired(
                "4.7.5", f"{need.where(hop)} is not an MX host the policy allows ({patterns})"
            )

    async def _opportunistic(self, hop: Hop, queue_id: str) -> _Session:
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

    async def _handshake(self, hop: Hop, starttls: bool, need: _Need | None = None) -> _Session:
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
        return _Session(
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

    async def _require_tls(self, smtp: aiosmtplib.SMTP, hop: Hop, need: _Need) -> None:
        """STARTTLS with the hop's certificate verified for its name, then EHLO again;
        TlsRequired (nothing else sent) when the hop cannot do that."""
        where = need.where(hop)
        if not smtp.supports_extension("starttls"):
            raise TlsRequired("4.7.4", f"{where} offers no STARTTLS")
        try:
            await smtp.starttls(
                tls_context=self._verified(),
                server_hostname=hop.tls_name,
                timeout=self.config.command_timeout,
            )
        except aiosmtplib.SMTPResponseException as exc:
            raise TlsRequired(
                "4.7.4", f"{where} refused STARTTLS: {exc.code} {exc.message}"
            ) from exc
        except SESSION_ERRORS as exc:
            raise TlsRequired("4.7.5", f"{where}: {_tls_trouble(exc)}") from exc
        await self._ehlo(smtp)

    def _verified(self) -> ssl.SSLContext:
        """The context of verified sessions (the system's CAs are read at the first use)."""
        if self._verify is None:
            self._verify = verified_context(self.config.tls_ca_file)
        return self._verify

    # -- the pool --------------------------------------------------------------------------

    def _take_idle(self, dest: _Destination, need: _Need) -> _Session | None:
        """The most recently used idle session still connected, not expired and giving
        what `need` says; dead ones met on the way are closed.

        It is not probed (no RSET or NOOP): a connection the peer closed is
        found by the transaction itself, before anything is sent (`_Stale`).
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

    def _release(self, dest: _Destination, session: _Session, reusable: bool) -> None:
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

    def _expired(self, session: _Session, now: float) -> bool:
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

    def _retire(self, session: _Session, polite: bool) -> None:
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

    def _forget_if_unused(self, key: str, dest: _Destination) -> None:
        if dest.users == 0 and not dest.idle and self._dests.get(key) is dest:
            del self._dests[key]


def _recipients(
    rcpts: list[str], replies: list[SMTPResponse], hop: str, results: dict[str, RcptOutcome]
) -> list[str]:
    """The recipients whose RCPT was accepted; refusals go into `results`."""
    accepted = []
    for rcpt, reply in zip(rcpts, replies, strict=False):  # replies may stop early
        if _is_ok(reply.code):
            accepted.append(rcpt)
        else:
            results[rcpt] = trouble.from_reply(rcpt, reply.code, reply.message, hop)
    return accepted


def _data_refused(rcpts: list[str], reply: SMTPResponse | None, hop: str) -> list[RcptOutcome]:
    """The outcomes of accepted recipients when DATA got no 354: its reply decides, but a
    2xx (the text was not sent) or no reply is a protocol error."""
    if reply is None or _is_ok(reply.code):
        error = aiosmtplib.SMTPException(f"DATA answered with {reply} instead of 354")
        return trouble.session_failed(rcpts, error, hop)
    return trouble.session_reply(rcpts, reply.code, reply.message, hop)


def _undecided(rcpts: list[str], results: dict[str, RcptOutcome]) -> list[str]:
    return [rcpt for rcpt in rcpts if rcpt not in results]


def _record(results: dict[str, RcptOutcome], outcomes: list[RcptOutcome]) -> None:
    for outcome in outcomes:
        results[outcome.rcpt] = outcome


def _count(outcomes: Sequence[RcptOutcome], kind: str) -> int:
    return sum(1 for outcome in outcomes if outcome.kind == kind)
