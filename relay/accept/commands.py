"""What each SMTP command means: the envelope, the policy, the commit of an accepted message.

`Commands` holds one session's protocol state (HELO name, the transaction
from MAIL FROM to the end of DATA) and a handler per verb; each handler
returns the `Reply` to send (or None when it already answered). It talks to
the wire only through `Wire` (implemented by `relay.accept.session`), so the
framing, timeouts and TLS live there and the meaning lives here.

Contract: MAIL FROM first does `registry.relay_sync()` (a change in the store
takes effect at the next transaction; while the store is down the registry's
last copy answers, without waiting on the store, and a copy older than
`[store] max_stale` is 451 4.3.0 to everyone: ugem.core.registry_watch),
looks the client up by address, asks the
node's throttle board (`SessionContext.throttle`, ugem.core.throttle) whether a
connected client is over its cap now (by the node's clock) and applies
`relay.accept.policy`; SIZE= (ASCII digits only, else 501) is checked against the
limit before any data; BODY= and
SMTPUTF8 are the only other parameters (others: 555); backpressure (intake
backlog over `max_queue_backlog`) is 451 4.3.2 at MAIL. RCPT applies the
recipient limit (452 4.5.3) and policy. At the end of DATA the message gets a
`Received:` header (`relay.accept.received`); mail from the internet (no
connected client) first goes through `SessionContext.inbound` (SPF/DKIM/DMARC,
which adds `Authentication-Results:` or refuses it); mail from a connected
server is
DKIM-signed over those final bytes (`relay.deliver.dkim_sign`; a signing failure is logged
and the mail queued unsigned, never refused; the signing runs in a worker
thread), and it goes to `Intake.enqueue`; only after it returns does the
client hear 250 (`replies.queued`), and then `Accepted` is published. The
commit is shielded, so a hang-up cannot tear it. SpoolFullError is 452 4.3.1
and another SpoolError 451 4.3.0, each with an INFO line (the spool has logged
the failure itself); any other failure is 451 4.3.0 with an ERROR line and
its traceback, naming the queue id.
Mail to the feedback address (`[reputation] fbl_address`, when the context
has `complaints`: `relay.accept.policy.is_feedback`) is a transaction of its
own (a recipient that would mix it with others gets 452 4.5.3, which a client
answers by sending those again later); at the end of DATA its text, as
received (no `Received:`, no checks, no signature), goes to
`SessionContext.complaints` instead of the intake, so it is never relayed,
and the client hears 250 with the complaint's number once it is kept. A
StoreError keeping it is 451 4.3.0 with an INFO line, any other failure 451
4.3.0 with an ERROR line and its traceback.
NOOP/RSET/VRFY/HELP and a HELO/EHLO that repeats the greeting (the first one,
and the first after STARTTLS, are free) are counted (`EndSession` with 421
over `max_noop_commands`); the count restarts after each accepted message.
Refusals are counted by the wire (`relay.accept.session`), not here; each
4xx/5xx reply to MAIL, RCPT or DATA (the end of DATA included) is published
as `Refused` with the rule behind it (`relay.accept.refusals`), and each
accepted message as `Accepted` with its Message-ID, TLS and HELO name, for
the mail log (`ugem.core.maillog`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from relay import replies
from relay.accept.address import Address, PathError, PathLimits, parse_mail, parse_rcpt
from relay.accept.policy import Gateway, check_mail, check_rcpt, is_feedback
from relay.accept.received import protocol, received_header
from relay.accept.refusals import why
from relay.deliver.dkim_sign import DkimSigner
from relay.header_block import message_id
from relay.queue.message import QueuedMessage, new_queue_id
from relay.replies import Reply
from relay.tls import TlsInfo
from ugem.core.clock import Clock
from ugem.core.config import Config
from ugem.core.errors import SpoolError, SpoolFullError, StoreError
from ugem.core.events import Accepted, EventBus, Refused
from ugem.core.log import event
from ugem.core.metrics import Metrics
from ugem.core.model import Connection, ConnState
from ugem.core.registry import Registry
from ugem.core.throttle import ThrottleView

log = logging.getLogger(__name__)

Handler = Callable[[str], Awaitable[Reply | None]]
MAX_SIZE_DIGITS = 20
# ASCII digits only: "²", "①" and "٣" pass str.isdigit() (and int() takes "٣" as 3).
SIZE_VALUE = re.compile(rf"[0-9]{{1,{MAX_SIZE_DIGITS}}}", re.ASCII)
BODY_VALUES = ("7BIT", "8BITMIME")


class Intake(Protocol):
    """Where accepted mail goes (implemented by the scheduler)."""

    async def enqueue(self, msg: QueuedMessage) -> None:
        """Durable on return; raises SpoolFullError / SpoolError."""
        ...

    def backlog(self) -> int:
        """Messages waiting; over smtp.max_queue_backlog new mail gets 451 4.3.2."""
        ...


class Inbound(Protocol):
    """Checks mail from the internet to connected domains (SPF, DKIM, DMARC: relay.inbound).

    Given the message as received (before our `Received:`), returns the bytes to
    queue in its place (forged `Authentication-Results:` removed, ours added at
    the top) or the `Reply` that refuses it. Never raises: a failed lookup is a
    result (temperror), not an exception.
    """

    async def check(self, text: bytes, envelope: Envelope) -> bytes | Reply: ...


class Numbered(Protocol):
    @property
    def id(self) -> int: ...


class Complaints(Protocol):
    """Where mail to the feedback address goes (ugem.core.services.complaints, wired by
    the node): kept on return (its number), or StoreError."""

    async def receive(self, text: bytes, client_ip: str, sender: str) -> Numbered: ...


@dataclass(frozen=True)
class Envelope:
    """What the session knows of a transaction when its data has arrived."""

    queue_id: str
    client_ip: str
    helo: str
    sender: str  # "" for the null reverse-path
    rcpts: tuple[str, ...]
    tls: bool


@dataclass(frozen=True)
class SessionContext:
    """What every session of a server shares."""

    config: Config
    registry: Registry
    intake: Intake
    bus: EventBus
    metrics: Metrics
    clock: Clock
    hostname: str
    gateway: Gateway
    limits: PathLimits
    tls: ssl.SSLContext | None
    dkim: DkimSigner | None = None  # signs mail from connected servers; None: no signing
    inbound: Inbound | None = None  # checks mail from the internet; None: no checks
    throttle: ThrottleView | None = None  # connections the detector throttles; None: none
    complaints: Complaints | None = None  # mail to gateway.feedback; None: no feedback address


class Wire(Protocol):
    """The session's side: how commands reach the client."""

    client_ip: str

    async def send(self, command: str, reply: Reply) -> None: ...

    async def send_lines(self, command: str, code: int, lines: list[str]) -> None: ...

    async def read_data(self) -> bytes | Reply: ...

    def data_done(self) -> None:
        """The text read_data gave is queued or refused: its memory may be reused."""
        ...

    async def start_tls(self, context: ssl.SSLContext) -> None: ...

    def tls_info(self) -> TlsInfo | None: ...

    def commit_started(self, task: asyncio.Task[None]) -> None: ...


class EndSession(Exception):
    """Close the session, after sending `reply` when there is one."""

    def __init__(self, reply: Reply | None) -> None:
        super().__init__(str(reply))
        self.reply = reply


@dataclass
class _Txn:
    """One mail transaction, from MAIL FROM to the end of DATA (or RSET)."""

    active: bool = False
    sender: Address | None = None
    client: Connection | None = None
    smtputf8: bool = False
    rcpts: list[str] = field(default_factory=list)
    rcpt_tried: bool = False
    complaint: bool = False  # its recipient is the feedback address


class Commands:
    def __init__(self, services: SessionContext, wire: Wire) -> None:
        self.svc = services
        self.smtp = services.config.smtp
        self.wire = wire
        self.helo: str | None = None
        self.esmtp = False
        self.tls = False
        self.noops = 0
        self.txn = _Txn()
        self.table: dict[str, Handler] = {
            "HELO": self.helo_cmd,
            "EHLO": self.ehlo_cmd,
            "MAIL": self._noted("MAIL", self.mail_cmd),
            "RCPT": self._noted("RCPT", self.rcpt_cmd),
            "DATA": self._noted("DATA", self.data_cmd),
            "RSET": self.rset_cmd,
            "NOOP": self.noop_cmd,
            "VRFY": self.vrfy_cmd,
            "HELP": self.help_cmd,
            "QUIT": self.quit_cmd,
            "STARTTLS": self.starttls_cmd,
        }

    def _noted(self, command: str, handler: Handler) -> Handler:
        """`handler`, whose refusals (4xx/5xx replies it returns) are published."""

        async def noted(arg: str) -> Reply | None:
            txn = self.txn  # DATA starts a new transaction: the refused one is this
            reply = await handler(arg)
            if reply is not None and not reply.is_positive:
                self._refused(command, reply, txn, _path_in(arg))
            return reply

        return noted

    def _refused(self, command: str, reply: Reply, txn: _Txn, path: str = "") -> None:
        """Publish a refusal of `command` in `txn`; `path` is the address the command named."""
        ip = self.wire.client_ip
        client = txn.client or self.svc.registry.by_address(ip)
        sender = path if command == "MAIL" else str(txn.sender or "")
        rcpts = (path,) if command == "RCPT" else tuple(txn.rcpts)
        self.svc.bus.publish(
            Refused(
                self.svc.clock.now(),
                ip,
                client.id if client is not None else "",
                command,
                reply.code,
                reply.status,
                reply.text,
                why(reply),
                sender,
                rcpts if command != "MAIL" else (),
                self.helo or "",
                self.tls,
            )
        )

    def _junk(self) -> None:
        """Count a NOOP-like command; over the cap the session ends."""
        self.noops += 1
        if self.noops > self.smtp.max_noop_commands:
            raise EndSession(replies.TOO_MANY_NOOPS)

    # -- greeting ------------------------------------------------------------------------

    async def helo_cmd(self, arg: str) -> Reply | None:
        return self._greet(arg, esmtp=False) or replies.helo_ok(self.svc.hostname)

    async def ehlo_cmd(self, arg: str) -> Reply | None:
        refusal = self._greet(arg, esmtp=True)
        if refusal is not None:
            return refusal
        keywords = [
            self.svc.hostname,
            f"SIZE {self.smtp.max_message_size}",
            "8BITMIME",
            "SMTPUTF8",
            "PIPELINING",
            "ENHANCEDSTATUSCODES",
        ]
        if self.svc.tls is not None and not self.tls:
            keywords.append("STARTTLS")
        await self.wire.send_lines("EHLO", 250, keywords)
        return None

    def _greet(self, arg: str, esmtp: bool) -> Reply | None:
        if not arg.strip():
            return replies.SYNTAX_ERROR
        if self.helo is not None:
            self._junk()  # a greeting again (not the one STARTTLS asks for): a NOOP-like loop
        self.helo, self.esmtp, self.txn = arg.strip(), esmtp, _Txn()
        return None

    # -- the envelope --------------------------------------------------------------------

    async def mail_cmd(self, arg: str) -> Reply | None:
        if self.helo is None:
            return replies.NEED_HELO
        if self.txn.active:
            return replies.NESTED_MAIL
        try:
            path = parse_mail(arg, self.svc.limits)
        except PathError as exc:
            return exc.reply
        problem = self._mail_params(path.params)
        if problem is not None:
            return problem
        if not await self.svc.registry.relay_sync():
            return replies.REGISTRY_UNAVAILABLE  # its store down longer than max_stale
        client = self.svc.registry.by_address(self.wire.client_ip)
        reply = check_mail(client, path.address, self._over_cap(client))
        if reply.is_positive and self.svc.intake.backlog() > self.smtp.max_queue_backlog:
            reply = replies.QUEUE_BACKLOG
        if reply.is_positive:
            utf8 = "SMTPUTF8" in path.params
            self.txn = _Txn(active=True, sender=path.address, client=client, smtputf8=utf8)
        return reply

    def _over_cap(self, client: Connection | None) -> bool:
        """Whether `client`'s connection is throttled and over its cap now."""
        board = self.svc.throttle
        if board is None or client is None or client.state != ConnState.CONNECTED:
            return False
        return board.refuses(client.id, self.svc.clock.now())

    def _mail_params(self, params: dict[str, str | None]) -> Reply | None:
        if params and not self.esmtp:
            return replies.SYNTAX_ERROR  # parameters need EHLO
        for key, value in params.items():
            if key == "SIZE":
                if value is None or not SIZE_VALUE.fullmatch(value):
                    return replies.PARAM_VALUE_BAD
                if int(value) > self.smtp.max_message_size:
                    return replies.size_exceeded(self.smtp.max_message_size)
            elif key == "BODY":
                if value is None or not value.isascii() or value.upper() not in BODY_VALUES:
                    return replies.PARAM_VALUE_BAD
            elif key == "SMTPUTF8":
                if value is not None:
                    return replies.PARAM_VALUE_BAD
            else:
                return replies.PARAM_UNKNOWN
        return None

    async def rcpt_cmd(self, arg: str) -> Reply | None:
        txn = self.txn
        if not txn.active:
            return replies.NEED_MAIL
        txn.rcpt_tried = True
        try:
            path = parse_rcpt(arg, self.svc.limits, txn.smtputf8)
        except PathError as exc:
            return exc.reply
        if path.params:
            return replies.PARAM_UNKNOWN
        if len(txn.rcpts) >= self.smtp.max_recipients:
            return replies.TOO_MANY_RECIPIENTS
        assert path.address is not None  # parse_rcpt never gives the null path
        reply = check_rcpt(txn.client, self.svc.registry, path.address, self.svc.gateway)
        complaint = is_feedback(path.address, self.svc.gateway)
        if reply.is_positive and txn.rcpts and complaint != txn.complaint:
            return replies.COMPLAINT_ALONE
        rcpt = str(path.address)
        if reply.is_positive and rcpt not in txn.rcpts:
            txn.rcpts.append(rcpt)
            txn.complaint = complaint
        return reply

    # -- the message ---------------------------------------------------------------------

    async def data_cmd(self, arg: str) -> Reply | None:
        txn = self.txn
        if arg:
            return replies.SYNTAX_ERROR
        if not txn.active:
            return replies.NEED_MAIL
        if not txn.rcpts:
            return replies.NO_VALID_RCPTS if txn.rcpt_tried else replies.NEED_RCPT
        await self.wire.send("DATA", replies.START_DATA)
        text = await self.wire.read_data()
        self.txn = _Txn()  # the transaction ends here, whatever the outcome
        if isinstance(text, Reply):
            self.svc.metrics.count("rejected")
            return text
        try:
            if txn.complaint:
                return await self._complaint(txn, text)
            await self._commit(txn, text)
        finally:
            self.wire.data_done()
        return None

    async def _complaint(self, txn: _Txn, text: bytes) -> Reply:
        """Keep mail to the feedback address as a complaint; shielded like a commit."""
        sink, client_ip = self.svc.complaints, self.wire.client_ip
        assert sink is not None  # a complaint transaction needs the feedback address
        kept: list[Numbered] = []

        async def keep() -> None:
            kept.append(await sink.receive(text, client_ip, str(txn.sender or "")))

        task = asyncio.ensure_future(keep())
        self.wire.commit_started(task)
        try:
            await asyncio.shield(task)
        except StoreError as exc:
            event(log, "complaint_not_kept", logging.INFO, client_ip=client_ip, error=str(exc))
            return replies.INTERNAL_ERROR
        except Exception:
            event(log, "complaint_error", logging.ERROR, exc_info=True, client_ip=client_ip)
            return replies.INTERNAL_ERROR
        self.noops = 0
        return replies.complaint_kept(kept[0].id)

    async def _commit(self, txn: _Txn, text: bytes) -> None:
        svc = self.svc
        started, now = svc.clock.monotonic(), svc.clock.now()
        msg = await self._queued(txn, text, new_queue_id(now), now)
        reply = msg if isinstance(msg, Reply) else await self._enqueue(msg)
        await self.wire.send("DATA", reply)
        svc.metrics.accept_latency.observe(max(0.0, svc.clock.monotonic() - started))
        if isinstance(msg, Reply) or not reply.is_positive:
            svc.metrics.count("rejected")
            self._refused("DATA", reply, txn)
            return
        self.noops = 0
        svc.metrics.count("accepted")
        svc.bus.publish(
            Accepted(
                now,
                msg.id,
                msg.connection,
                msg.client_ip,
                msg.sender,
                tuple(msg.rcpts),
                msg.size,
                message_id=message_id(text),
                tls=self.tls,
                helo=self.helo or "",
            )
        )
        event(
            log,
            "accepted",
            logging.DEBUG,
            queue_id=msg.id,
            size=msg.size,
            rcpts=len(msg.rcpts),
            client_ip=msg.client_ip,
            connection=msg.connection,
        )

    async def _queued(
        self, txn: _Txn, text: bytes, queue_id: str, now: float
    ) -> QueuedMessage | Reply:
        client = txn.client
        origin = client.id if client is not None and client.state == ConnState.CONNECTED else ""
        if not origin and self.svc.inbound is not None:
            checked = await self.svc.inbound.check(text, self._envelope(txn, queue_id))
            if isinstance(checked, Reply):
                return checked
            text = checked
        header = received_header(
            helo=self.helo or "",
            client_ip=self.wire.client_ip,
            hostname=self.svc.hostname,
            with_=protocol(self.esmtp, self.tls, txn.smtputf8),
            queue_id=queue_id,
            rcpts=txn.rcpts,
            when=now,
            tls=self.wire.tls_info(),
        )
        data = header + text
        if client is not None and origin and self.svc.dkim is not None:
            domain = txn.sender.domain if txn.sender is not None else None
            data = await self.svc.dkim.outgoing_async(data, client.domains, domain, queue_id)
        return QueuedMessage(
            id=queue_id,
            sender=str(txn.sender or ""),
            rcpts=list(txn.rcpts),
            data=data,
            size=len(data),
            connection=origin,
            client_ip=self.wire.client_ip,
            received_at=now,
            original_rcpts=list(txn.rcpts),
        )

    def _envelope(self, txn: _Txn, queue_id: str) -> Envelope:
        return Envelope(
            queue_id=queue_id,
            client_ip=self.wire.client_ip,
            helo=self.helo or "",
            sender=str(txn.sender or ""),
            rcpts=tuple(txn.rcpts),
            tls=self.tls,
        )

    async def _enqueue(self, msg: QueuedMessage) -> Reply:
        """Hand the message to the intake; shielded, so a hang-up cannot tear the commit."""
        task = asyncio.ensure_future(self.svc.intake.enqueue(msg))
        self.wire.commit_started(task)
        try:
            await asyncio.shield(task)
        except SpoolFullError:
            event(log, "spool_full", logging.INFO, queue_id=msg.id)
            return replies.SPOOL_FULL
        except SpoolError as exc:  # the spool logged it (ERROR, once per failed write)
            event(log, "spool_refused", logging.INFO, queue_id=msg.id, error=str(exc))
            return replies.INTERNAL_ERROR
        except Exception:
            event(
                log,
                "accept_internal_error",
                logging.ERROR,
                exc_info=True,
                queue_id=msg.id,
                client_ip=msg.client_ip,
            )
            return replies.INTERNAL_ERROR
        return replies.queued(msg.id)

    # -- the rest ------------------------------------------------------------------------

    async def rset_cmd(self, arg: str) -> Reply | None:
        self._junk()
        if arg.strip():
            return replies.SYNTAX_ERROR
        self.txn = _Txn()
        return replies.RESET_OK

    async def noop_cmd(self, arg: str) -> Reply | None:
        self._junk()
        return replies.NOOP_OK

    async def vrfy_cmd(self, arg: str) -> Reply | None:
        self._junk()
        return replies.VRFY_NO if arg.strip() else replies.SYNTAX_ERROR

    async def help_cmd(self, arg: str) -> Reply | None:
        self._junk()
        return replies.HELP

    async def quit_cmd(self, arg: str) -> Reply | None:
        raise EndSession(replies.BYE)

    async def starttls_cmd(self, arg: str) -> Reply | None:
        context = self.svc.tls
        if context is None:
            return replies.NOT_IMPLEMENTED
        if self.tls:
            return replies.ALREADY_TLS
        if arg.strip():
            return replies.SYNTAX_ERROR
        await self.wire.start_tls(context)
        # RFC 3207 4.2: forget everything learnt from the client before TLS.
        self.tls, self.helo, self.esmtp, self.txn = True, None, False, _Txn()
        return None


MAX_PATH = 320  # characters of an address kept from a refused command's argument


def _path_in(arg: str) -> str:
    """The address between the angle brackets of a MAIL/RCPT argument ("" if none)."""
    inside = arg.partition("<")[2].partition(">")[0]
    return inside[:MAX_PATH]
