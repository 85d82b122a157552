"""The sink: a fast SMTP server that counts what arrives, for a relay to deliver to.

`SinkSession` is the protocol without I/O: `feed(bytes)` returns the replies
to write, answering every complete command in the bytes at once (so
PIPELINING costs nothing) and, after DATA's 354, looking only for the
terminator CRLF.CRLF (an empty text is "." right after DATA); a message's
text is then dot-unstuffed (RFC 5321 4.5.2) and handed to `on_message(text,
recipients)`. It accepts every sender and recipient, says 554 to DATA
without a recipient, 552 to a text over `max_size` (still read to its end),
500 to a command line over 4 KiB or an unknown command, and 221 to QUIT
(then `closing` is set). Given `rcpt_reply` (a refusal line, such as a
blocklisted gateway hears), it answers every RCPT with it instead, so a relay
can be shown a next hop that refuses it. Given a `watch`
(`loadtest.watch.Watcher`), it tells it each message with its envelope and
each refused recipient. It never raises on client input.

`Arrivals` counts messages, bytes, recipients and sessions, the wall-clock
times of the first and last arrival (`arrival_rate` is (messages - 1) /
(last - first)), and the `X-Loadtest-Id` of each: ids seen more than once
are duplicates; given the ids that were sent (`expect(ids)`) it also counts
those lost and those unexpected. `stats()` is a plain-JSON dict. With `keep`
it also keeps every text (`kept`), for tests. A relay that splits one
message's recipients over several transactions shows up as duplicates.

`SinkServer.start(host, port)` serves `SinkSession`s on the running loop
(`rcpt_reply` and `watch` passed to each); `stop()` closes the listener and
every session.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

from loadtest.watch import Watcher, path_of

ID_HEADER = b"\r\nx-loadtest-id:"
MAX_LINE = 4096
DEFAULT_MAX_SIZE = 64 * 1024 * 1024
TERMINATOR = b"\r\n.\r\n"
OnMessage = Callable[[bytes, int], None]


def unstuff(text: bytes) -> bytes:
    """Undo dot-stuffing of a text that begins right after DATA's CRLF."""
    text = (b"\r\n" + text).replace(b"\r\n..", b"\r\n.")
    return text[2:]


def message_id(text: bytes) -> str | None:
    """The X-Loadtest-Id header's value in the header section, if there is one."""
    end = text.find(b"\r\n\r\n")
    head = b"\r\n" + (text if end < 0 else text[: end + 2])
    start = head.lower().find(ID_HEADER)  # lower() keeps offsets: ASCII only
    if start < 0:
        return None
    start += len(ID_HEADER)
    stop = head.find(b"\r\n", start)
    value = head[start : stop if stop >= 0 else len(head)].strip()
    return value.decode("ascii", "replace") or None


class SinkSession:
    """One SMTP session's protocol; see the module docstring."""

    def __init__(
        self,
        on_message: OnMessage,
        hostname: str = "sink.loadtest.invalid",
        max_size: int = DEFAULT_MAX_SIZE,
        rcpt_reply: bytes | None = None,
        watch: Watcher | None = None,
    ) -> None:
        self.on_message = on_message
        self.hostname = hostname.encode()
        self.max_size = max_size
        self.rcpt_reply = rcpt_reply
        self.watch = watch
        self.sender = b""  # the envelope, kept only for a watch
        self.rcpts: list[bytes] = []
        self.buffer = bytearray()
        self.in_data = False
        self.too_big = False
        self.scanned = 0
        self.recipients = 0
        self.closing = False

    def greeting(self) -> bytes:
        return b"220 %s ESMTP loadtest sink\r\n" % self.hostname

    def feed(self, data: bytes) -> bytes:
        """The replies to everything complete in the input so far."""
        self.buffer += data
        out: list[bytes] = []
        while not self.closing:
            step = self._data() if self.in_data else self._command()
            if step is None:
                break
            out.append(step)
        return b"".join(out)

    def _command(self) -> bytes | None:
        end = self.buffer.find(b"\r\n")
        if end < 0:
            if len(self.buffer) > MAX_LINE:
                self.buffer.clear()
                return b"500 5.5.2 Line too long\r\n"
            return None
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return self._reply(line)

    def _reply(self, line: bytes) -> bytes:
        verb = line[:4].upper()
        if len(line) > MAX_LINE:
            return b"500 5.5.2 Line too long\r\n"
        if verb == b"EHLO":
            return (
                b"250-%s\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
                b"250-SIZE %d\r\n250 ENHANCEDSTATUSCODES\r\n" % (self.hostname, self.max_size)
            )
        if verb == b"HELO":
            return b"250 %s\r\n" % self.hostname
        if verb in (b"MAIL", b"RSET"):
            self.recipients = 0
            if self.watch is not None:
                self.sender = path_of(line) if verb == b"MAIL" else b""
                self.rcpts = []
            return b"250 2.0.0 OK\r\n"
        if verb == b"RCPT":
            return self._rcpt(line)
        if verb == b"DATA":
            return self._start_data()
        if verb == b"NOOP":
            return b"250 2.0.0 OK\r\n"
        if verb == b"QUIT":
            self.closing = True
            return b"221 2.0.0 Bye\r\n"
        return b"500 5.5.1 Unknown command\r\n"

    def _rcpt(self, line: bytes) -> bytes:
        if self.rcpt_reply is not None:
            if self.watch is not None:
                self.watch.refused(self.sender, path_of(line), self.rcpt_reply)
            return self.rcpt_reply
        self.recipients += 1
        if self.watch is not None:
            self.rcpts.append(path_of(line))
        return b"250 2.1.5 OK\r\n"

    def _start_data(self) -> bytes:
        if not self.recipients:
            return b"554 5.5.1 No valid recipients\r\n"
        self.in_data, self.too_big, self.scanned = True, False, 0
        self.buffer[:0] = b"\r\n"  # so that "." right after DATA ends an empty text
        return b"354 End data with <CR><LF>.<CR><LF>\r\n"

    def _data(self) -> bytes | None:
        end = self.buffer.find(TERMINATOR, self.scanned)
        if end < 0:
            self.scanned = max(0, len(self.buffer) - len(TERMINATOR) + 1)
            if len(self.buffer) > self.max_size:
                self.too_big = True
                del self.buffer[: self.scanned]
                self.scanned = 0
            return None
        text = bytes(self.buffer[2 : end + 2])
        del self.buffer[: end + len(TERMINATOR)]
        self.in_data, recipients, self.recipients = False, self.recipients, 0
        if self.too_big or len(text) > self.max_size:
            return b"552 5.3.4 Message too big\r\n"
        text = unstuff(text)
        self.on_message(text, recipients)
        if self.watch is not None:
            self.watch.message(self.sender, self.rcpts, text)
            self.rcpts = []
        return b"250 2.0.0 OK\r\n"


class Arrivals:
    """What arrived at a sink; see the module docstring."""

    def __init__(self, clock: Callable[[], float] = time.time, keep: bool = False) -> None:
        self.clock = clock
        self.kept: list[bytes] | None = [] if keep else None
        self.reset()

    def reset(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.recipients = 0
        self.sessions = 0
        self.without_id = 0
        self.duplicates = 0
        self.first: float | None = None
        self.last: float | None = None
        self.ids: set[str] = set()
        self.expected: set[str] | None = None
        if self.kept is not None:
            self.kept.clear()

    def record(self, text: bytes, recipients: int) -> None:
        now = self.clock()
        if self.first is None:
            self.first = now
        self.last = now
        self.messages += 1
        self.bytes += len(text)
        self.recipients += recipients
        if self.kept is not None:
            self.kept.append(text)
        msg_id = message_id(text)
        if msg_id is None:
            self.without_id += 1
        elif msg_id in self.ids:
            self.duplicates += 1
        else:
            self.ids.add(msg_id)

    def expect(self, ids: Iterable[str]) -> None:
        self.expected = set(ids)

    def stats(self) -> dict[str, Any]:
        span = (self.last - self.first) if self.first is not None and self.last else 0.0
        stats: dict[str, Any] = {
            "messages": self.messages,
            "bytes": self.bytes,
            "recipients": self.recipients,
            "sessions": self.sessions,
            "unique_ids": len(self.ids),
            "duplicates": self.duplicates,
            "without_id": self.without_id,
            "first_arrival": self.first,
            "last_arrival": self.last,
            "arrival_rate": (self.messages - 1) / span if span > 0 else None,
            "expected": None,
            "lost": None,
            "unexpected": None,
        }
        if self.expected is not None:
            stats["expected"] = len(self.expected)
            stats["lost"] = len(self.expected - self.ids)
            stats["unexpected"] = len(self.ids - self.expected)
        return stats


class _Protocol(asyncio.Protocol):
    def __init__(self, server: SinkServer) -> None:
        self.server = server
        self.session = SinkSession(
            server.arrivals.record,
            server.hostname,
            server.max_size,
            server.rcpt_reply,
            server.watch,
        )
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.server.open.add(self.transport)
        self.server.arrivals.sessions += 1
        self.transport.write(self.session.greeting())

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        out = self.session.feed(data)
        if out:
            self.transport.write(out)
        if self.session.closing:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.server.open.discard(self.transport)


class SinkServer:
    """Serves SinkSessions on the running loop; see the module docstring."""

    def __init__(
        self,
        hostname: str,
        max_size: int,
        arrivals: Arrivals | None = None,
        rcpt_reply: bytes | None = None,
        watch: Watcher | None = None,
    ) -> None:
        self.hostname = hostname
        self.max_size = max_size
        self.arrivals = arrivals or Arrivals()
        self.rcpt_reply = rcpt_reply
        self.watch = watch
        self.open: set[asyncio.Transport] = set()
        self.server: asyncio.Server | None = None
        self.host = ""
        self.port = 0

    @classmethod
    async def start(
        cls,
        host: str = "127.0.0.1",
        port: int = 0,
        hostname: str = "sink.loadtest.invalid",
        max_size: int = DEFAULT_MAX_SIZE,
        keep: bool = False,
        rcpt_reply: bytes | None = None,
        watch: Watcher | None = None,
    ) -> SinkServer:
        sink = cls(hostname, max_size, Arrivals(keep=keep), rcpt_reply, watch)
        loop = asyncio.get_running_loop()
        sink.server = await loop.create_server(lambda: _Protocol(sink), host, port, backlog=1024)
        sink.host, sink.port = sink.server.sockets[0].getsockname()[:2]
        return sink

    async def stop(self) -> None:
        if self.server is None:
            return
        self.server.close()
        for transport in list(self.open):
            transport.close()
        await self.server.wait_closed()
        self.server = None
