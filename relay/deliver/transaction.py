"""Outbound SMTP: one message to the recipients behind one route, over a reused session.

`Deliverer.deliver(route, sender, rcpts, data, queue_id)` returns one
`RcptOutcome` per recipient and never raises for a delivery failure; all
classification is `relay.deliver.trouble`'s. The recipients are split by the
TLS their sessions must give (`relay.deliver.requirements`: tls_required_domains,
MTA-STS), each group goes in a transaction of its own over a session the pool
gives (`relay.deliver.pool`: a reused one, or a new one to the first hop that
qualifies), and the transaction is run here. What it promises:

- when no hop gives a session, every recipient is deferred with the last
  hop's error (a TLS requirement not met is the one reported); recipients
  whose domain requires TLS that no hop gives are deferred with a 451 naming
  the domain, the hop and the failure;
- under an MTA-STS policy of mode testing, each transaction over a session
  that falls short of the policy is logged at WARNING with the queue id, the
  domain and what would have failed, and counted (`metrics.mta_sts_failures`,
  mode testing); each attempt an enforced policy blocked is counted (mode
  enforce). A policy lookup that fails unexpectedly defers the recipients (4.3.0);
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
  fails, that timed out, lost its connection or heard a 421 is closed (the
  pool's `release`), a clean one goes back to the pool;
- a reused session is not probed first: if its connection fails before the
  first reply of the transaction (the peer closed it meanwhile), nothing was
  sent, and the message goes once over a new session (`_Stale`, which never
  leaves this module).

Timeouts: `command_timeout` for every reply of the transaction, including each
reply of a pipelined group and the end of DATA (the pool's timeouts bound the
opening of a session). One DEBUG line per attempt carries the queue id, the
hop and its TLS (version, cipher, whether verified); each outcome carries the
attempt's seconds opening its session (0 for a reused one) and running the
transaction (`RcptOutcome.connect`, `transfer`: the mail log's delays). An unexpected error
defers the recipients (4.3.0) and is logged with its traceback.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosmtplib
from aiosmtplib import SMTPResponse

from relay.deliver import trouble
from relay.deliver.backoff import Backoff
from relay.deliver.mta_sts import ENFORCE, TESTING, MtaSts
from relay.deliver.pool import Destination, Session, SessionPool, Unreachable
from relay.deliver.requirements import Need, Requirements
from relay.deliver.routing import DnsCache, Route
from relay.deliver.smtp_client import END_OF_DATA, dot_stuff, envelope_commands
from relay.deliver.trouble import CLOSING, START_INPUT, RcptOutcome
from relay.tls import RequiredTls, verified_context
from ugem.core.clock import Clock
from ugem.core.config import DeliveryConfig
from ugem.core.errors import TlsRequired
from ugem.core.log import event
from ugem.core.metrics import Metrics

log = logging.getLogger(__name__)

_RSET = b"RSET\r\n"


@dataclass
class _Plan:
    """What a transaction sends on this session, and what is refused before sending."""

    options: list[bytes]
    encoding: str
    refused: dict[str, RcptOutcome]


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
        backoff: Backoff | None = None,
    ) -> None:
        """`mta_sts` looks policies up (default: one on the config's DNS and CA file);
        it is not used when `config.mta_sts` is "off". `backoff` holds rate-limited
        destinations back (default: one of its own; the scheduler reports to it)."""
        self.config = config
        self.helo_name = helo_name
        self.metrics = metrics
        self.clock = clock
        self.backoff = Backoff(config, clock, metrics) if backoff is None else backoff
        required = RequiredTls.of(config.tls_required_domains)
        needs_ca = bool(required) or bool(config.tls_ca_file)
        verify = verified_context(config.tls_ca_file) if needs_ca else None
        self._pool = SessionPool(config, helo_name, metrics, clock, verify, self.backoff)
        sts: MtaSts | None = None
        if config.mta_sts != "off":
            sts = mta_sts or MtaSts(DnsCache(config, clock), clock, metrics, config.tls_ca_file)
        self._needs = Requirements(config, required, sts)

    @property
    def open_sessions(self) -> int:
        """Outbound sessions open now (in use or idle)."""
        return self._pool.open_sessions

    async def deliver(
        self, route: Route, sender: str, rcpts: Sequence[str], data: bytes, queue_id: str
    ) -> list[RcptOutcome]:
        """One outcome per recipient, in order; never raises for delivery failures."""
        try:
            policy = await self._needs.policy(route)
        except Exception as exc:  # a bug must not lose mail, nor send it around the policy
            return self._internal_error(queue_id, route, list(rcpts), exc)
        groups = self._needs.groups(rcpts, policy)
        outcomes: list[RcptOutcome] = []
        for group, need in groups:
            outcomes += await self._deliver(route, sender, group, data, queue_id, need)
        if len(groups) == 1:
            return outcomes
        by_rcpt = {outcome.rcpt: outcome for outcome in outcomes}
        return [by_rcpt[rcpt] for rcpt in rcpts]

    async def _deliver(
        self,
        route: Route,
        sender: str,
        rcpts: list[str],
        data: bytes,
        queue_id: str,
        need: Need,
    ) -> list[RcptOutcome]:
        """`deliver` for recipients whose sessions must all give what `need` says."""
        if not rcpts:
            return []
        try:
            async with self._pool.destination(route.key) as dest:
                return await self._attempt(route, dest, sender, rcpts, data, queue_id, need)
        except Exception as exc:  # a bug must not lose mail: defer, log the traceback
            return self._internal_error(queue_id, route, rcpts, exc)

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
        await self._pool.close()

    # -- one attempt -----------------------------------------------------------------------

    async def _attempt(
        self,
        route: Route,
        dest: Destination,
        sender: str,
        rcpts: list[str],
        data: bytes,
        queue_id: str,
        need: Need,
    ) -> list[RcptOutcome]:
        """On an idle session if there is one that gives what `need` says (a new one if it
        turns out stale), else on a new one."""
        session = self._pool.take_idle(dest, need)
        if session is not None:
            started = self.clock.monotonic()
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
                return _timed(outcomes, 0.0, self.clock.monotonic() - started)
        opening = self.clock.monotonic()
        opened = await self._pool.open(route, queue_id, need)
        connected = self.clock.monotonic()
        if isinstance(opened, Unreachable):
            self._log_attempt(queue_id, route, opened.hop, error=str(opened.cause))
            if need.policy is not None and isinstance(opened.cause, TlsRequired):
                self.metrics.mta_sts_failures.labels(ENFORCE).inc()
            failed = trouble.session_failed(rcpts, opened.cause, opened.hop)
            return _timed(failed, connected - opening, 0.0)
        outcomes = await self._run(dest, opened, sender, rcpts, data, reused=False)
        self._log_attempt(queue_id, route, opened.name, opened, False, outcomes)
        self._report(queue_id, need, opened)
        return _timed(outcomes, connected - opening, self.clock.monotonic() - connected)

    def _report(self, queue_id: str, need: Need, session: Session) -> None:
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
        dest: Destination,
        session: Session,
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
            self._pool.release(dest, session, reusable)
        return outcomes

    def _log_attempt(
        self,
        queue_id: str,
        route: Route,
        hop: str,
        session: Session | None = None,
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

    # -- the transaction -------------------------------------------------------------------

    async def _transaction(
        self, session: Session, sender: str, rcpts: list[str], data: bytes, reused: bool
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
        self, session: Session, commands: list[bytes]
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
        session: Session,
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
        self, session: Session, accepted: list[str], data: bytes, results: dict[str, RcptOutcome]
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

    async def _abandon(self, session: Session, go_ahead: bool) -> bool:
        """End a transaction whose text is not sent: an empty text after a 354 (RFC 2920
        3.1: the hop must not deliver it), else RSET. True if the session is clean."""
        command = END_OF_DATA if go_ahead else _RSET
        replies, _ = await session.protocol.exchange(command, 1, self.config.command_timeout)
        return bool(replies) and (go_ahead or _is_ok(replies[0].code))


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


def _timed(outcomes: list[RcptOutcome], connect: float, transfer: float) -> list[RcptOutcome]:
    """`outcomes` with the attempt's connect and transfer seconds."""
    connect, transfer = max(0.0, connect), max(0.0, transfer)
    return [dataclasses.replace(o, connect=connect, transfer=transfer) for o in outcomes]


def _count(outcomes: Sequence[RcptOutcome], kind: str) -> int:
    return sum(1 for outcome in outcomes if outcome.kind == kind)
