"""A small, fast SMTP client for the generator: one session, many messages, PIPELINING.

`Session.open(host, port, source, helo)` connects (from `source` when given),
reads the greeting and says EHLO (HELO when EHLO is refused with 5xx).
`send(message)` runs one transaction: with PIPELINING offered (and wanted),
MAIL, every RCPT and DATA go in one write and their replies are read after;
otherwise one command at a time. The text is sent after 354, dot-stuffed only
when it needs it; the accept latency is the time from writing the end of data
to reading its reply. The result is an `Outcome`: accepted, or refused with
the code that ended the transaction (see loadtest.report), plus the codes of
refused recipients. A failed transaction is cleared with RSET before the next
one. A 421 reply marks the session dead (`alive` False).

Failures: `Refused` when the greeting or HELO is refused (the session is
closed), `SessionLost` when the connection closes or a reply is malformed
(the transaction's fate is unknown). Timeouts are the caller's, with
asyncio.timeout around a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from loadtest.content import Message

READ_LIMIT = 1 << 20


class Refused(Exception):
    """The server refused the session (greeting or HELO); `code` is its reply code."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code


class SessionLost(Exception):
    """The connection closed, or the server's reply was not SMTP."""


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple[bytes, ...]

    @property
    def text(self) -> str:
        return b" ".join(self.lines).decode("utf-8", "replace")


@dataclass(frozen=True)
class Outcome:
    code: int  # 250 when accepted, else the code that ended the transaction
    latency: float | None = None  # seconds, end of data to its reply, when there was one
    rcpt_refused: tuple[int, ...] = field(default_factory=tuple)

    @property
    def accepted(self) -> bool:
        return self.code == 250


def parse_reply_line(line: bytes) -> tuple[int, bool, bytes]:
    """(code, last line?, text) of one reply line; SessionLost when it is not one."""
    if len(line) < 4 or not line[:3].isdigit() or line[3:4] not in (b" ", b"-", b"\r", b"\n"):
        raise SessionLost(f"not an SMTP reply line: {line[:80]!r}")
    return int(line[:3]), line[3:4] != b"-", line[4:].rstrip(b"\r\n")


def stuff(text: bytes) -> bytes:
    """Dot-stuffing (RFC 5321 4.5.2) of a CRLF-terminated text."""
    if text.startswith(b"."):
        text = b"." + text
    return text.replace(b"\r\n.", b"\r\n..")


class Session:
    """One SMTP session; see the module docstring."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.extensions: frozenset[str] = frozenset()
        self.pipelining = False
        self.alive = True
        self.dirty = False  # a transaction was left open: RSET before the next

    @classmethod
    async def open(
        cls, host: str, port: int, source: str | None, helo: str, pipelining: bool = True
    ) -> Session:
        try:
            reader, writer = await asyncio.open_connection(
                host, port, local_addr=(source, 0) if source else None, limit=READ_LIMIT
            )
        except OSError as exc:
            raise SessionLost(f"connect to {host}:{port}: {exc}") from exc
        session = cls(reader, writer)
        try:
            await session._hello(helo, pipelining)
        except BaseException:
            session.abort()
            raise
        return session

    async def _hello(self, helo: str, pipelining: bool) -> None:
        greeting = await self.read_reply()
        if greeting.code != 220:
            raise Refused(greeting.code, greeting.text)
        reply = await self.command(b"EHLO %s\r\n" % helo.encode())
        if 500 <= reply.code < 600:
            reply = await self.command(b"HELO %s\r\n" % helo.encode())
        elif reply.code == 250:
            self.extensions = frozenset(
                line.split(b" ", 1)[0].decode("ascii", "replace").upper()
                for line in reply.lines[1:]
            )
        if reply.code != 250:
            raise Refused(reply.code, reply.text)
        self.pipelining = pipelining and "PIPELINING" in self.extensions

    async def read_reply(self) -> Reply:
        lines: list[bytes] = []
        while True:
            try:
                line = await self.reader.readuntil(b"\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as exc:
                raise SessionLost(f"connection lost: {exc!r}") from exc
            code, last, text = parse_reply_line(line)
            lines.append(text)
            if last:
                if code == 421:
                    self.alive = False
                return Reply(code, tuple(lines))

    async def command(self, line: bytes) -> Reply:
        self.writer.write(line)
        return await self.read_reply()

    async def send(self, message: Message) -> Outcome:
        """One transaction for `message`; see the module docstring."""
        if self.dirty:
            await self.command(b"RSET\r\n")
            self.dirty = False
        commands = [b"MAIL FROM:<%s>\r\n" % message.sender.encode()]
        commands += [b"RCPT TO:<%s>\r\n" % rcpt.encode() for rcpt in message.rcpts]
        commands.append(b"DATA\r\n")
        replies = await (self._pipelined(commands) if self.pipelining else self._stepwise(commands))
        return await self._finish(message, replies)

    async def _pipelined(self, commands: list[bytes]) -> list[Reply]:
        self.writer.write(b"".join(commands))
        return [await self.read_reply() for _ in commands]

    async def _stepwise(self, commands: list[bytes]) -> list[Reply]:
        """One command at a time; stops after a refused MAIL, skips DATA with no recipient."""
        replies = [await self.command(commands[0])]
        if replies[0].code != 250:
            return replies
        for line in commands[1:-1]:
            replies.append(await self.command(line))
        if any(reply.code in (250, 251) for reply in replies[1:]):
            replies.append(await self.command(commands[-1]))
        return replies

    async def _finish(self, message: Message, replies: list[Reply]) -> Outcome:
        mail, rcpts = replies[0], replies[1 : 1 + len(message.rcpts)]
        data = replies[-1] if len(replies) == len(message.rcpts) + 2 else None
        refused = tuple(r.code for r in rcpts if r.code not in (250, 251))
        ok = mail.code == 250 and len(refused) < len(rcpts)
        if data is not None and data.code == 354:
            return await self._data(message.text if ok else b"", refused, ok)
        self.dirty = mail.code == 250
        code = mail.code if mail.code != 250 else (refused[0] if not ok else _code(data))
        return Outcome(code, None, refused)

    async def _data(self, text: bytes, refused: tuple[int, ...], ok: bool) -> Outcome:
        """After 354: the text and its end; an empty one when no recipient was accepted."""
        if text and (text.startswith(b".") or b"\r\n." in text):
            text = stuff(text)
        self.writer.write(text + b".\r\n")
        await self.writer.drain()
        started = time.perf_counter()
        reply = await self.read_reply()
        latency = time.perf_counter() - started
        if not ok:
            return Outcome(refused[0] if refused else reply.code, None, refused)
        return Outcome(reply.code, latency, refused)

    async def quit(self) -> None:
        """QUIT politely when the session is alive, then close; never raises."""
        with contextlib.suppress(SessionLost, TimeoutError, OSError):
            if self.alive:
                async with asyncio.timeout(5):
                    await self.command(b"QUIT\r\n")
        self.abort()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    def abort(self) -> None:
        self.alive = False
        self.writer.close()


def _code(reply: Reply | None) -> int:
    return reply.code if reply is not None else 0
