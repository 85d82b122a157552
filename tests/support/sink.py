"""An in-process SMTP sink: the next hop the relay delivers to in tests.

`Sink` is aiosmtpd's SMTP protocol served by `loop.create_server` on the
running event loop (not the threaded Controller), bound to a loopback address
and a free port. It keeps every message it accepts as a `SinkMessage` whose
`data` is exactly the bytes received (after the dot-unstuffing of RFC 5321
4.5.2, nothing else: line endings and 8-bit bytes are as the client sent them;
the null sender is ""). It can be told to refuse:

- `rcpt_reply(address)` / `mail_reply(address)`: return a reply line such as
  "550 5.1.1 No such user" to refuse that recipient / sender, None to accept;
- `data_replies`: replies used in order for successive DATA commands (a 4xx or
  5xx one means the message is not kept); when empty, "250 OK";
- `data_gate`: an `asyncio.Event` every DATA waits for before replying, to hold
  sessions open (`in_data` counts the sessions waiting at it).

It counts TCP sessions: `connections` (accepted so far), `active` (open now)
and `peak` (most open at once); each message records its session number and
the client's address and port, so a test can tell one reused connection from
several; `drop_sessions()` hangs up on every client, as a peer's idle timeout
would. `await sink.wait_for(n)` waits for the n-th message (an event, not a
pause) and fails with a clear message after `timeout` seconds;
`wait_until(condition, timeout, what)` does the same for any condition. With
`tls=True` (fixture `tls_sink`) it offers STARTTLS with a self-signed
certificate for sink.test and 127.0.0.1 (`tests.support.tls_cert.self_signed`),
or with any `ssl.SSLContext` given as `tls`; `SinkMessage.tls` says whether
the message came over TLS. `size_limit` is announced in EHLO SIZE and enforced.
Fixtures `sink` and `tls_sink` start one on 127.0.0.1 for a test and stop it
afterwards; `await Sink.start(host, port)` for other addresses (then
`await sink.stop()`).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import shutil
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.tls_cert import self_signed

DEFAULT_REPLY = "250 OK"
DEFAULT_SIZE_LIMIT = 64 * 1024 * 1024
SINK_HOSTNAME = "sink.test"
Replier = Callable[[str], str | None]


@dataclass(frozen=True)
class SinkMessage:
    sender: str  # "" for the null sender
    rcpts: list[str]
    data: bytes
    peer: str  # the client's IP address
    tls: bool
    peer_port: int = 0
    session: int = 0  # number of the TCP session that carried it, from 1
    mail_options: list[str] = field(default_factory=list)  # upper-cased by aiosmtpd
    rcpt_options: list[str] = field(default_factory=list)


@functools.cache
def _cert_files() -> tuple[Path, Path]:
    """One self-signed certificate per test process, removed at exit."""
    directory = Path(tempfile.mkdtemp(prefix="ugem-sink-tls-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return self_signed(directory, SINK_HOSTNAME, ["127.0.0.1"])


def server_tls_context() -> ssl.SSLContext:
    """A server-side context with the sink's self-signed certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*_cert_files())
    return context


class _Handler:
    """aiosmtpd hooks that ask the sink how to answer."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refusal = self.sink.mail_reply(address) if self.sink.mail_reply else None
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return DEFAULT_REPLY

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refusal = self.sink.rcpt_reply(address) if self.sink.rcpt_reply else None
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return DEFAULT_REPLY

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return await self.sink._on_data(server, session, envelope)


class _SinkSMTP(SMTP):  # type: ignore[misc]  # aiosmtpd has no type information
    """aiosmtpd's protocol, numbered and counted by the sink."""

    def __init__(self, sink: Sink, **kwargs: Any) -> None:
        super().__init__(_Handler(sink), **kwargs)
        self.sink = sink
        self.number = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # not the second call after STARTTLS
        super().connection_made(transport)
        if first:
            self.sink._on_open(self)

    def connection_lost(self, error: Exception | None) -> None:
        if self.closed:  # `Sink.drop_sessions` may have said so already
            return
        super().connection_lost(error)
        self.closed = True
        self.sink._on_close(self)


class Sink:
    """An SMTP next hop on the running loop; see the module docstring."""

    def __init__(
        self,
        tls: bool | ssl.SSLContext = False,
        size_limit: int = DEFAULT_SIZE_LIMIT,
    ) -> None:
        self.host = ""
        self.port = 0
        self.tls_context = server_tls_context() if tls is True else (tls or None)
        self.size_limit = size_limit
        self.messages: list[SinkMessage] = []
        self.rcpt_reply: Replier | None = None
        self.mail_reply: Replier | None = None
        self.data_replies: list[str] = []
        self.data_gate: asyncio.Event | None = None
        self.connections = 0
        self.active = 0
        self.peak = 0
        self.in_data = 0
        self._sessions: set[_SinkSMTP] = set()
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Event()

    @classmethod
    async def start(
        cls,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool | ssl.SSLContext = False,
        size_limit: int = DEFAULT_SIZE_LIMIT,
    ) -> Sink:
        """A sink listening on host:port (port 0: a free one; see `.port`).

        `tls`: True offers STARTTLS with the self-signed certificate, an
        `ssl.SSLContext` offers it with that context. `size_limit` is announced
        in EHLO SIZE and enforced.
        """
        sink = cls(tls=tls, size_limit=size_limit)
        await sink._listen(host, port)
        return sink

    async def _listen(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()

        def factory() -> _SinkSMTP:
            return _SinkSMTP(
                self,
                hostname=SINK_HOSTNAME,
                data_size_limit=self.size_limit,
                enable_SMTPUTF8=True,
                tls_context=self.tls_context,
                loop=loop,
            )

        self._server = await loop.create_server(factory, host=host, port=port)
        self.host, self.port = self._server.sockets[0].getsockname()[:2]

    async def stop(self) -> None:
        """Stop listening, close open sessions and wait until they are gone."""
        if self._server is None:
            return
        self._server.close()
        await self.drop_sessions()
        await self._server.wait_closed()
        self._server = None

    async def drop_sessions(self) -> None:
        """Close every open session from the server side (as a peer's idle timeout does).

        After STARTTLS the session is also told it lost its connection: asyncio's
        TLS layer, closed in the middle of a handshake, never tells it (and
        aiosmtpd would wait for the next command forever).
        """
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
            if session._original_transport is not None:
                session.connection_lost(None)
        await self.wait_until(lambda: self.active == 0, 10, "all sessions closed")

    # -- waiting for events ----------------------------------------------------------------

    async def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until `condition()` holds (checked on every change); AssertionError if not."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            remaining = deadline - loop.time()
            try:
                await asyncio.wait_for(self._changed.wait(), max(remaining, 0))
            except TimeoutError:
                if condition():
                    return
                raise AssertionError(
                    f"sink {self.host}:{self.port}: {what} did not happen within {timeout} s "
                    f"({len(self.messages)} messages, {self.connections} sessions)"
                ) from None

    async def wait_for(self, n: int, timeout: float = 10) -> list[SinkMessage]:
        """Wait until at least `n` messages have arrived; they are returned."""
        await self.wait_until(lambda: len(self.messages) >= n, timeout, f"{n} messages")
        return self.messages

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- protocol callbacks ----------------------------------------------------------------

    def _on_open(self, session: _SinkSMTP) -> None:
        self.connections += 1
        session.number = self.connections
        self._sessions.add(session)
        self.active += 1
        self.peak = max(self.peak, self.active)
        self._notify()

    def _on_close(self, session: _SinkSMTP) -> None:
        self._sessions.discard(session)
        self.active -= 1
        self._notify()

    async def _on_data(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_gate is not None:
            self.in_data += 1
            self._notify()
            try:
                await self.data_gate.wait()
            finally:
                self.in_data -= 1
        reply = self.data_replies.pop(0) if self.data_replies else DEFAULT_REPLY
        if reply[:1] == "2":
            self.messages.append(self._message(server, session, envelope))
            self._notify()
        return reply

    @staticmethod
    def _message(server: SMTP, session: Session, envelope: Envelope) -> SinkMessage:
        peer: Any = session.peer  # (host, port, ...) although typed as a string
        sender = envelope.mail_from or ""
        return SinkMessage(
            sender="" if sender == "<>" else sender,
            rcpts=list(envelope.rcpt_tos),
            data=bytes(envelope.original_content or b""),
            peer=str(peer[0]),
            tls=session.ssl is not None,
            peer_port=int(peer[1]),
            session=server.number if isinstance(server, _SinkSMTP) else 0,
            mail_options=list(envelope.mail_options),
            rcpt_options=list(envelope.rcpt_options),
        )


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    """A started sink on 127.0.0.1 (free port), stopped after the test."""
    started = await Sink.start("127.0.0.1", 0)
    try:
        yield started
    finally:
        await started.stop()


@pytest.fixture
async def tls_sink() -> AsyncIterator[Sink]:
    """A started sink on 127.0.0.1 that offers STARTTLS (self-signed certificate)."""
    started = await Sink.start("127.0.0.1", 0, tls=True)
    try:
        yield started
    finally:
        await started.stop()
