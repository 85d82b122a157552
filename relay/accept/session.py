"""One inbound SMTP session on the wire: an asyncio stream protocol, our loop and framing.

`SmtpSession` is an `asyncio.StreamReaderProtocol`: the transport, a reader
and a writer, and one task per session (`task`), cancelled when the
connection is lost. It began as a subclass of aiosmtpd's `SMTP`, whose parts
were replaced one by one (its framing took bare-LF lines, its exception reply
was "500 <exception text>", it dropped pipelined commands at EOF, its one idle
timer could not bound DATA or TLS). What was left was its constructor, which
builds its handler tables by introspection (`inspect.getmembers`, `dir`) for
every connection: 109 us a session, the largest single cost of a session in
the profile of one message per connection (BENCHMARKS.md, issue 17).
The command loop (`_handle_client`) reads through its own byte buffer: a
command must end in CRLF and hold no bare CR, bare LF or NUL, or it gets
BAD_COMMAND_CHARS. DATA is read in 64 KiB chunks by
`relay.accept.data.DataReader`, which ends only at CRLF.CRLF; what follows
stays buffered for the next command (PIPELINING). Verbs go to
`relay.accept.commands.Commands`, which holds what they mean.

Limits: command line (`max_command_line`, MAIL/RCPT with PARAM_ROOM more),
an idle client (`command_timeout`), a slow DATA (`data_timeout`) and a
session that has gone `max_idle_session` seconds (the injected clock) without
an accepted message (a 250 to DATA restarts it; nothing else does) get
421 4.4.2 and are closed. Each read of a command line or of DATA is bounded
by the session's one timer (`relay.accept.deadline.ReadDeadline`), not a
timer per command. Every 4xx/5xx reply counts as a bad command
(malformed, unknown, refused, internal errors alike) except 452 too many
recipients (or a recipient beside the feedback address) and the policy's
refusals of a recipient, which count toward `max_rcpt_denials` instead;
over `max_bad_commands` or `max_rcpt_denials` the session gets 421 4.7.0 in
place of the reply (or after it, for the reply to a message's text) and is
closed. No refused command can so be looped for free.
Command verbs are ASCII (no Unicode case folding into a verb). STARTTLS
discards every byte received in clear after the command (no injection
across the TLS boundary, CVE-2011-0411), hand-shakes with the server's
context of the moment (`SessionHost.tls_context`, renewed by a reload), and a
handshake that fails or is slower than
`tls_handshake_timeout` drops the session: logged (INFO, with the client's
address) and counted by reason, never raised. `tls_info()` is then what the
handshake chose (for the `Received:` header). An
exception in a command is a 451 4.3.0 and an ERROR log line, never the
exception's text. A hang-up ends the session quietly.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Protocol, cast

from relay import replies
from relay.accept.commands import Commands, EndSession, SessionContext
from relay.accept.data import DataReader
from relay.accept.deadline import ReadDeadline
from relay.accept.memory_budget import MemoryBudget
from relay.replies import Reply
from relay.tls import TlsInfo, negotiated
from ugem.core.log import event

log = logging.getLogger(__name__)

READ_SIZE = 65536
# The StreamReader's limit: we never readuntil(), so it only bounds how much the reader
# buffers before it pauses the socket.
READER_LIMIT = 256 * 1024
PARAM_ROOM = 64  # extra octets MAIL/RCPT may take for ESMTP parameters (RFC 5321 4.5.3.1.4)
# Refusals the bad-command count leaves alone: RFC 5321 4.5.3.1.10 expects a client to go on
# after 452 too many recipients (and after 452 for a recipient that would join the feedback
# address's transaction); policy's refusals of a recipient have their own count.
NOT_BAD = frozenset({replies.TOO_MANY_RECIPIENTS, replies.COMPLAINT_ALONE})
RCPT_DENIALS = frozenset(
    {replies.RELAY_DENIED, replies.NO_LOCAL_MAILBOX, replies.POSTMASTER_UNROUTED}
)
KNOWN = frozenset(
    {
        "HELO",
        "EHLO",
        "MAIL",
        "RCPT",
        "DATA",
        "RSET",
        "NOOP",
        "QUIT",
        "VRFY",
        "HELP",
        "STARTTLS",
        "EXPN",
        "AUTH",
        "BDAT",
    }
)
NOT_OFFERED = frozenset({"EXPN", "AUTH", "BDAT"})


class SessionHost(Protocol):
    """The server's side of a session: connection caps and commits in flight."""

    def admit(self, session: SmtpSession) -> Reply | None: ...

    def release(self, session: SmtpSession) -> None: ...

    def commit_started(self, task: asyncio.Task[None]) -> None: ...

    @property
    def data_budget(self) -> MemoryBudget:
        """The bytes every session's DATA in progress may hold, shared."""
        ...

    def tls_context(self) -> ssl.SSLContext | None:
        """The STARTTLS context now (a reload replaces it); None: use the session's."""
        ...


@dataclass(frozen=True)
class _Line:
    raw: bytes
    overlong: bool = False


class SmtpSession(asyncio.StreamReaderProtocol):
    _writer: asyncio.StreamWriter  # set by connection_made, before the session's task runs
    _deadline: ReadDeadline  # the task's, set by connection_made with it

    def __init__(self, services: SessionContext, host: SessionHost) -> None:
        self.host = host
        self.smtp = services.config.smtp
        self.metrics = services.metrics
        self.client_ip = ""
        self.commands = Commands(services, self)
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.BaseTransport | None = None
        self._session_task: asyncio.Task[None] | None = None
        self._reader = asyncio.StreamReader(limit=READER_LIMIT, loop=self.loop)
        self._buf = bytearray()
        self._bad = 0
        self._denials = 0
        self._clock = services.clock
        self._since = services.clock.monotonic()  # the start, or the last accepted message
        self._ending: Reply | None = None  # a limit crossed by a reply a command sent itself
        self._busy = False
        self._held: DataReader | None = None  # the message read, until data_done()
        self._closing = False
        self._goodbye = replies.SHUTTING_DOWN  # the 421 a closing session ends with
        self._lost = False
        self._refusal: Reply | None = None
        self._tls: TlsInfo | None = None
        self._banner = replies.greeting(services.hostname)
        super().__init__(self._reader, self._connected, loop=self.loop)

    # -- connection plumbing -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admit (or not) the client, then start the session's task."""
        self.client_ip = client_ip(transport.get_extra_info("peername"))
        self._refusal = self.host.admit(self)
        super().connection_made(transport)  # calls _connected with the writer
        self.transport = transport
        self._session_task = self.loop.create_task(self._handle_client())
        self._deadline = ReadDeadline(self._session_task)

    def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    def connection_lost(self, error: Exception | None) -> None:
        """Once, whatever ended it: release the slot, wake the reader, cancel the task."""
        if self._lost:
            return
        self._lost = True
        self.host.release(self)
        super().connection_lost(error)
        if self._session_task is not None:
            self._session_task.cancel()
        self.transport = None

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._session_task

    def commit_started(self, task: asyncio.Task[None]) -> None:
        self.host.commit_started(task)

    def shut_down(self, reply: Reply = replies.SHUTTING_DOWN) -> None:
        """Server stopping (or draining): an idle session gets `reply` (a 421) now, a busy
        one after its command."""
        self._closing, self._goodbye = True, reply
        if not self._busy:
            self._close_now(reply)

    def abort(self) -> None:
        if self.transport is not None:
            # uvloop's transports have abort() without being asyncio.WriteTransport subclasses
            cast(asyncio.WriteTransport, self.transport).abort()

    def _close_now(self, reply: Reply | None) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if reply is not None:
            self._write("CLOSE", reply.code, str(reply))
        transport.close()

    # -- the command loop ----------------------------------------------------------------

    async def _handle_client(self) -> None:
        try:
            await self._serve()
        except EndSession as end:
            self._close_now(end.reply)
        except (ConnectionError, OSError):
            self._close_now(None)
        finally:
            self._deadline.close()

    async def _serve(self) -> None:
        if self._refusal is not None:
            raise EndSession(self._refusal)
        await self.send("CONNECT", self._banner)
        while not self._closing:
            line = await self._next_line()
            if line is None:
                raise EndSession(None)
            if self._idle_left() <= 0:
                raise EndSession(replies.IDLE_SESSION)
            self._busy = True
            try:
                await self._dispatch(line)
            finally:
                self._busy = False
            if self._ending is not None:
                raise EndSession(self._ending)
        raise EndSession(self._goodbye)

    async def _next_line(self) -> _Line | None:
        """The next command line, within command_timeout and what is left of max_idle_session."""
        left = self._idle_left()
        if left <= 0:
            raise EndSession(replies.IDLE_SESSION)
        timeout = self.smtp.command_timeout
        try:
            with self._deadline.within(min(timeout, left)):
                return await self._read_line()
        except TimeoutError:
            raise EndSession(replies.TIMEOUT if timeout <= left else replies.IDLE_SESSION) from None

    def _idle_left(self) -> float:
        """Seconds this session may still go on without an accepted message."""
        return self.smtp.max_idle_session - (self._clock.monotonic() - self._since)

    async def _read_line(self) -> _Line | None:
        """The next line through LF from our buffer; None at EOF."""
        limit = self.smtp.max_command_line + PARAM_ROOM
        overlong = False
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                raw = bytes(self._buf[: end + 1])
                del self._buf[: end + 1]
                return _Line(raw, overlong or len(raw) > limit)
            if len(self._buf) > limit:
                overlong = True
                self._buf.clear()
            chunk = await self._reader.read(READ_SIZE)
            if not chunk:
                return None
            self._buf += chunk

    async def _dispatch(self, line: _Line) -> None:
        verb, arg, problem = self._decode(line)
        label = verb if verb in KNOWN else "UNKNOWN"
        handler = self.commands.table.get(verb)
        if problem is None and handler is None:
            problem = replies.NOT_IMPLEMENTED if verb in NOT_OFFERED else replies.UNKNOWN_COMMAND
        if problem is not None:
            await self._answer(label, problem)
            return
        assert handler is not None
        try:
            reply = await handler(arg)
        except (EndSession, ConnectionError):
            raise
        except Exception:
            event(
                log,
                "smtp_command_failed",
                logging.ERROR,
                exc_info=True,
                command=verb,
                client_ip=self.client_ip,
            )
            reply = replies.INTERNAL_ERROR
        if reply is not None:
            await self._answer(label, reply)

    def _decode(self, line: _Line) -> tuple[str, str, Reply | None]:
        """(VERB, argument, the refusal if the line is malformed)."""
        raw = line.raw
        if line.overlong:
            return "", "", replies.COMMAND_TOO_LONG
        body = raw[:-2]
        if not raw.endswith(b"\r\n") or b"\r" in body or b"\n" in body or b"\0" in body:
            return "", "", replies.BAD_COMMAND_CHARS
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return "", "", replies.SYNTAX_ERROR
        verb, _, arg = text.partition(" ")
        verb = verb.upper() if verb.isascii() else "?"  # "ma\u0131l".upper() is "MAIL"
        room = PARAM_ROOM if verb in ("MAIL", "RCPT") else 0
        if len(raw) > self.smtp.max_command_line + room:
            return verb, "", replies.COMMAND_TOO_LONG
        return verb, arg, None

    async def _answer(self, command: str, reply: Reply) -> None:
        """Send a command's reply; one over a limit is replaced by the 421 that ends the session."""
        over = self._counted(command, reply)
        if over is not None:
            raise EndSession(over)
        self._write(command, reply.code, str(reply))
        await self._writer.drain()

    def _counted(self, command: str, reply: Reply) -> Reply | None:
        """Count `reply` against the session's limits; the 421 to end with when one is crossed.

        A refused RCPT (policy) counts toward max_rcpt_denials; any other 4xx/5xx reply,
        internal errors included, toward max_bad_commands; a 250 to the end of DATA (a
        message accepted) restarts the max_idle_session clock.
        """
        if reply.is_positive:
            if command == "DATA" and reply.code == 250:
                self._since = self._clock.monotonic()
            return None
        if reply in NOT_BAD:
            return None
        if command == "RCPT" and reply in RCPT_DENIALS:
            self._denials += 1
            over = self._denials > self.smtp.max_rcpt_denials
            return replies.TOO_MANY_RCPT_DENIALS if over else None
        self._bad += 1
        return replies.TOO_MANY_BAD if self._bad > self.smtp.max_bad_commands else None

    # -- Wire: what the commands use -----------------------------------------------------

    async def send(self, command: str, reply: Reply) -> None:
        """A reply a command sends itself (end of DATA); over a limit the session ends after it."""
        self._ending = self._ending or self._counted(command, reply)
        self._write(command, reply.code, str(reply))
        await self._writer.drain()

    async def send_lines(self, command: str, code: int, lines: list[str]) -> None:
        text = "\r\n".join(f"{code}-{line}" for line in lines[:-1])
        self._write(command, code, (text + "\r\n" if text else "") + f"{code} {lines[-1]}")
        await self._writer.drain()

    def _write(self, command: str, code: int, text: str) -> None:
        self.metrics.reply(command, code)
        self._writer.write(text.encode() + b"\r\n")

    async def read_data(self) -> bytes | Reply:
        """The message after 354, up to CRLF.CRLF, checked; bounded by data_timeout.

        The text it returns stays counted in the listener's memory budget until
        `data_done()`; a refusal or a session ending in DATA gives it back at once.
        """
        reader = DataReader(self.smtp.max_message_size, self.host.data_budget)
        try:
            text = await self._read_message(reader)
        except BaseException:
            reader.release()
            raise
        if isinstance(text, Reply):
            reader.release()
        else:
            self._held = reader
        return text

    async def _read_message(self, reader: DataReader) -> bytes | Reply:
        done = reader.feed(bytes(self._buf))
        self._buf.clear()
        try:
            with self._deadline.within(self.smtp.data_timeout):
                while not done:
                    chunk = await self._reader.read(READ_SIZE)
                    if not chunk:
                        raise EndSession(None)  # the client left in the middle of DATA
                    done = reader.feed(chunk)
        except TimeoutError:
            raise EndSession(replies.TIMEOUT) from None
        self._buf += reader.rest
        smtp = self.smtp
        return reader.message(smtp.max_text_line, smtp.normalize_line_endings, smtp.max_header_size)

    def data_done(self) -> None:
        """The message `read_data` gave is queued or refused: its memory is given back."""
        if self._held is not None:
            self._held.release()
            self._held = None

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """Discard what the client sent in clear after STARTTLS, then hand-shake, bounded."""
        assert self.transport is not None
        cast(asyncio.ReadTransport, self.transport).pause_reading()  # nothing more in clear
        self._buf.clear()
        self._reader._buffer.clear()  # type: ignore[attr-defined]
        await self.send("STARTTLS", replies.READY_TLS)
        context = self.host.tls_context() or context
        timeout = self.smtp.tls_handshake_timeout
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(context, ssl_handshake_timeout=timeout)
        except (TimeoutError, ConnectionError, OSError) as exc:
            self._handshake_failed(exc)
            raise EndSession(None) from None
        self.transport = self._writer.transport
        self._reader._transport = self.transport  # type: ignore[attr-defined]
        self._tls = negotiated(self.transport.get_extra_info("ssl_object"))

    def _handshake_failed(self, exc: BaseException) -> None:
        """Log and count a failed handshake, and end the connection."""
        reason = handshake_failure(exc)
        self.metrics.tls_handshake_failures.labels(reason).inc()
        detail = str(exc) or type(exc).__name__
        event(
            log,
            "tls_handshake_failed",
            logging.INFO,
            client_ip=self.client_ip,
            reason=reason,
            error=detail,
        )
        self.abort()
        # asyncio does not pass on a loss during the handshake: end the session here.
        self.connection_lost(None)

    def tls_info(self) -> TlsInfo | None:
        """The version and cipher of this session's TLS, None while it is in clear."""
        return self._tls


def client_ip(peer: object) -> str:
    """The client's address as text; an IPv4-mapped IPv6 address as plain IPv4."""
    if not isinstance(peer, tuple) or not peer:
        return ""
    host = str(peer[0]).split("%", 1)[0]
    if host.startswith("::ffff:") and "." in host:
        return host[len("::ffff:") :]
    return host


def handshake_failure(exc: BaseException) -> str:
    """Why a handshake failed, as a metric label: timeout, tls_error or disconnected."""
    if isinstance(exc, TimeoutError | ConnectionAbortedError):
        return "timeout"  # asyncio aborts a handshake past ssl_handshake_timeout
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLEOFError):
        return "tls_error"
    return "disconnected"
