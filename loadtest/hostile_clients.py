"""The clients of the hostile-input benchmark: large streamed messages, a folded header,
a banner probe. Pure builders and small async clients; no gateway here.

- `folded_header(size)`: one header field `X-Folded: a` folded over as many
  continuation lines `  b` as make about `size` bytes (within 4 below it),
  CRLF line ends: a single field, every line after the first starting with
  white space.
- `folded_message(size, sender, rcpt, msg_id)`: a message whose header
  section holds that field among the usual ones, and a one-line body.
- `big_head(...)` and `filler(size)`: the head of large message n (of the
  same length for every n below a million) and a body shared by all, so N
  senders of S bytes hold one copy of the body, not N.
- `transact(session, sender, rcpt, parts)`: one transaction on an open
  `loadtest.smtp.Session`, one command at a time; the text (`parts` joined)
  is written in `CHUNK`-byte slices with a drain after each, so a sender
  never copies a large message into its transport's buffer. Returns a
  `Sent`: the code and text of the reply that ended the transaction (MAIL's,
  RCPT's, DATA's or the end of data's) and the seconds from writing the end
  of data to its reply (None when the text was not sent). `SessionLost`
  when the connection goes.
- `probe_banner(host, port, source, timeout)`: connect and read the first
  reply line; a `Probe` with its start (monotonic), the seconds to that line
  and its code, or the failure (connect, closed, timeout). `Prober` starts
  one every `interval` seconds, each on its own (a stalled server shows as
  many slow probes, not as one), from `sources` in turn, at most
  `max_outstanding` at a time (more are counted as skipped).
- `summary(seconds)`: nearest-rank p50/p90/p99/max of latencies in ms
  (loadtest.report.Latency).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate

from loadtest.content import body
from loadtest.report import Latency
from loadtest.smtp import READ_LIMIT, Session, SessionLost, parse_reply_line

CHUNK = 256 * 1024
FOLD_FIRST = b"X-Folded: a\r\n"
FOLD_LINE = b"  b\r\n"


def folded_header(size: int) -> bytes:
    """One field folded over about `size` bytes (at least one continuation line)."""
    lines = max(1, (size - len(FOLD_FIRST)) // len(FOLD_LINE))
    return FOLD_FIRST + FOLD_LINE * lines


def folded_message(size: int, sender: str, rcpt: str, msg_id: str) -> bytes:
    """A message whose header section carries `folded_header(size)`."""
    head = (
        f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: folded header {msg_id}\r\n"
        f"Date: {formatdate(localtime=False)}\r\nMessage-ID: <{msg_id}@loadtest.invalid>\r\n"
        f"X-Loadtest-Id: {msg_id}\r\n"
    ).encode()
    return head + folded_header(size) + b"\r\nOne field of this header is folded.\r\n"


def big_head(n: int, run_id: str, sender: str, rcpt: str, date: str) -> bytes:
    """The header section of large message n; one length for all n < 1,000,000."""
    msg_id = f"{run_id}-{n:06d}"
    return (
        f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: large message {msg_id}\r\n"
        f"Date: {date}\r\nMessage-ID: <{msg_id}@loadtest.invalid>\r\n"
        f"X-Loadtest-Id: {msg_id}\r\n\r\n"
    ).encode()


def filler(size: int) -> bytes:
    """`size` bytes (give or take one) of body lines, none starting with "."."""
    return body(size)


@dataclass(frozen=True)
class Sent:
    code: int
    text: str
    data_seconds: float | None = None  # end of data written -> its reply


async def transact(
    session: Session, sender: str, rcpt: str, parts: Sequence[bytes], chunk: int = CHUNK
) -> Sent:
    """One transaction, one command at a time; see the module docstring."""
    for line in (b"MAIL FROM:<%s>\r\n" % sender.encode(), b"RCPT TO:<%s>\r\n" % rcpt.encode()):
        reply = await session.command(line)
        if reply.code not in (250, 251):
            return Sent(reply.code, reply.text)
    reply = await session.command(b"DATA\r\n")
    if reply.code != 354:
        return Sent(reply.code, reply.text)
    writer = session.writer
    try:
        for part in parts:
            view = memoryview(part)
            for start in range(0, len(view), chunk):
                writer.write(view[start : start + chunk])
                await writer.drain()
        writer.write(b".\r\n")
        await writer.drain()
    except (OSError, RuntimeError) as exc:
        raise SessionLost(f"connection lost while sending the text: {exc!r}") from exc
    started = time.perf_counter()
    reply = await session.read_reply()
    return Sent(reply.code, reply.text, time.perf_counter() - started)


@dataclass(frozen=True)
class Probe:
    started: float  # time.monotonic() when the connect began
    seconds: float  # to the first reply line, or to the failure
    code: int | None  # the first line's code; None when it failed
    failure: str = ""  # connect, closed, timeout


async def probe_banner(host: str, port: int, source: str | None, timeout: float) -> Probe:
    """Connect and time the first line of the greeting; see the module docstring."""
    started = time.monotonic()
    stage = "connect"
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host, port, local_addr=(source, 0) if source else None, limit=READ_LIMIT
            )
            stage = "closed"
            line = await reader.readuntil(b"\n")
        code, _, _ = parse_reply_line(line)
        return Probe(started, time.monotonic() - started, code)
    except TimeoutError:
        return Probe(started, time.monotonic() - started, None, "timeout")
    except (OSError, SessionLost, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return Probe(started, time.monotonic() - started, None, stage)
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class Prober:
    """Banner probes at a steady interval until stopped; see the module docstring."""

    def __init__(
        self,
        host: str,
        port: int,
        sources: Sequence[str],
        interval: float,
        timeout: float = 10.0,
        max_outstanding: int = 150,
    ) -> None:
        self.host = host
        self.port = port
        self.sources = tuple(sources)
        self.interval = interval
        self.timeout = timeout
        self.max_outstanding = max_outstanding
        self.probes: list[Probe] = []
        self.skipped = 0
        self._pending: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        n = 0
        next_at = time.monotonic()
        while True:
            if len(self._pending) >= self.max_outstanding:
                self.skipped += 1
            else:
                source = self.sources[n % len(self.sources)] if self.sources else None
                task = asyncio.create_task(self._one(source))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
                n += 1
            next_at += self.interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _one(self, source: str | None) -> None:
        self.probes.append(await probe_banner(self.host, self.port, source, self.timeout))

    async def stop(self) -> list[Probe]:
        """No more probes; wait for those under way (each bounded by its timeout)."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        return sorted(self.probes, key=lambda p: p.started)


def summary(seconds: Sequence[float]) -> Latency:
    """p50/p90/p99/max (nearest rank) and mean, in ms, of latencies given in seconds."""
    return Latency.of(seconds)
