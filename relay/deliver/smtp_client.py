"""The wire side of the outbound SMTP client: pipelined replies, dot-stuffing, commands.

`PipelinedProtocol` is aiosmtplib's protocol (the project's chosen client
library) made able to read the replies to a PIPELINING group (RFC 2920): the
stock reader parses one reply per arrival of data and loses or stalls on a
group's replies. `adopt()` gives a connection's protocol this reader; it
relies on aiosmtplib 5.x internals (`_buffer`, `_response_waiter`,
`_read_response_from_buffer`), which tests/unit/test_deliver.py exercises on
both asyncio's loop and uvloop. `dot_stuff` and `envelope_commands` build the
bytes that go on the wire; an address with a control character is refused
with ValueError before anything is sent. Reading errors are returned, not
raised, by `exchange`, as one of `SESSION_ERRORS`.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import deque
from collections.abc import Sequence
from typing import cast

import aiosmtplib
from aiosmtplib import SMTPResponse
from aiosmtplib.protocol import MAX_RESPONSE_LENGTH, SMTPProtocol

# Failures that end a session (or the attempt to open one); anything else is a bug.
SESSION_ERRORS = (aiosmtplib.SMTPException, OSError, TimeoutError)
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")  # never inside a command argument
_DATA = b"DATA\r\n"
END_OF_DATA = b".\r\n"  # an empty text, or the end of one
_CRLF = b"\r\n"
_DOT_LINE = re.compile(rb"\r\n\.")  # a line that starts with a dot


class PipelinedProtocol(SMTPProtocol):
    """aiosmtplib's protocol, able to read the replies to a pipelined group.

    The stock reader parses one reply per arrival of data and drops data that
    arrives while a parsed reply waits to be read: right for one command at a
    time, but it loses or stalls on the replies to a group (a hop sends them
    together, RFC 2920 3.1). While `exchange` waits for its replies, every
    complete reply is parsed as it arrives and kept in order; otherwise the
    stock reader runs (EHLO, STARTTLS with its discard of cleartext, QUIT).
    """

    _ahead: deque[SMTPResponse | Exception]  # parsed, waiting to be read, in order
    _grouped: bool  # an exchange is reading replies
    _heard: float  # loop time of the exchange's start or its last reply
    _watchdog: asyncio.TimerHandle  # fails an exchange that hears nothing in time

    @classmethod
    def adopt(cls, protocol: SMTPProtocol) -> PipelinedProtocol:
        """Give the protocol aiosmtplib made for a connection this reader.

        The transport is told again who its protocol is: uvloop's transports
        keep the bound `data_received` they were given.
        """
        protocol.__class__ = cls
        adopted = cast(PipelinedProtocol, protocol)
        adopted._ahead = deque()
        adopted._grouped = False
        if adopted.transport is not None:
            adopted.transport.set_protocol(adopted)
        return adopted

    async def exchange(
        self, commands: bytes | tuple[bytes, ...], count: int, timeout: float
    ) -> tuple[list[SMTPResponse], Exception | None]:
        """Write `commands` at once (pieces one after the other, not joined), read `count`
        replies, each within `timeout` seconds.

        Returns the replies read, and the error that stopped reading early (the
        connection failed, a reply was late or malformed) or None.
        """
        replies: list[SMTPResponse] = []
        lock = self._command_lock
        if lock is None:
            return replies, aiosmtplib.SMTPServerDisconnected("Connection lost")
        async with lock:
            self._grouped = True
            self._heard = self._loop.time()
            self._watchdog = self._loop.call_at(self._heard + timeout, self._watch, timeout)
            try:
                for piece in (commands,) if isinstance(commands, bytes) else commands:
                    self.write(piece)
                while len(replies) < count:
                    replies.append(await self._next_reply())
                return replies, None
            except SESSION_ERRORS as exc:
                return replies, exc
            finally:
                self._watchdog.cancel()
                self._grouped = False
                self._ahead.clear()

    def _watch(self, timeout: float) -> None:
        """Fail the reader when nothing was heard for `timeout` seconds, else look again
        when that could be (one timer per exchange, not one per reply)."""
        waiter = self._response_waiter
        if waiter is None:  # the connection is gone: reading fails anyway
            return
        now = self._loop.time()
        if now < self._heard + timeout:
            self._watchdog = self._loop.call_at(self._heard + timeout, self._watch, timeout)
        elif not waiter.done():
            # read_response() turns this into its own SMTPReadTimeoutError
            self._set_response_exception(waiter, aiosmtplib.SMTPReadTimeoutError("no reply"))
        else:  # a reply waits to be read: the next one gets its full time
            self._heard = now
            self._watchdog = self._loop.call_at(now + timeout, self._watch, timeout)

    async def _next_reply(self) -> SMTPResponse:
        if not self._ahead:
            return await self.read_response(timeout=None)
        reply = self._ahead.popleft()
        if isinstance(reply, Exception):
            raise reply
        return reply

    def data_received(self, data: bytes) -> None:
        if not self._grouped:
            super().data_received(data)
            return
        if self._response_waiter is None:  # the connection is gone
            return
        self._buffer.extend(data)
        try:
            while (reply := self._read_response_from_buffer()) is not None:
                self._pass_on(reply)
        except Exception as exc:  # a malformed reply: nothing after it can be trusted
            del self._buffer[:]
            self._pass_on(exc)
        if len(self._buffer) > MAX_RESPONSE_LENGTH:
            del self._buffer[:]
            too_long = aiosmtplib.SMTPStatus.invalid_response.value
            self._pass_on(aiosmtplib.SMTPResponseException(too_long, "Response too long"))

    def _pass_on(self, reply: SMTPResponse | Exception) -> None:
        """To the reader waiting now, or queued behind the replies not read yet."""
        self._heard = self._loop.time()
        waiter = self._response_waiter
        if self._ahead or waiter is None or waiter.done():
            self._ahead.append(reply)
        elif isinstance(reply, Exception):
            self._set_response_exception(waiter, reply)
        else:
            waiter.set_result(reply)


def client_tls_context() -> ssl.SSLContext:
    """Opportunistic TLS: encrypt, verify nothing (like Postfix's security level "may")."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def dot_stuff(data: bytes) -> tuple[bytes, ...]:
    """CRLF-only text as sent after DATA (RFC 5321 4.5.2): dots doubled, CRLF.CRLF at the end.

    In pieces to write one after the other, never joined: at 1 MB a copy of the
    text costs as much as a write. With no line starting with a dot (re's literal
    search, 0.28 ms a MB, where `replace` first counts with bytes.find's, 0.7 ms),
    the text itself is the first piece.
    """
    dotted = _DOT_LINE.search(data) is not None
    stuffed = data.replace(b"\r\n.", b"\r\n..") if dotted else data
    end = END_OF_DATA if data.endswith(b"\r\n") else _CRLF + END_OF_DATA
    return (b".", stuffed, end) if stuffed.startswith(b".") else (stuffed, end)


def _path(address: str, encoding: str) -> bytes:
    raw = address.encode(encoding)
    if _CONTROL.search(raw):
        raise ValueError(f"address {address!r} contains a control character")
    return b"<" + raw + b">"


def envelope_commands(
    sender: str, rcpts: Sequence[str], options: list[bytes], encoding: str
) -> list[bytes]:
    """MAIL FROM, one RCPT TO per recipient and DATA, each ending in CRLF."""
    mail = b" ".join([b"MAIL FROM:" + _path(sender, encoding), *options]) + b"\r\n"
    return [mail, *(b"RCPT TO:" + _path(r, encoding) + b"\r\n" for r in rcpts), _DATA]
