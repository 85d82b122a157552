"""Idle connections: N concurrent SMTP sessions opened, greeted and held without a word.

`hold_idle(options)` opens `connections` sessions to a loopback target,
connection i from `sources[i % len(sources)]`, at most `concurrency` connects
(with their greeting) at a time, each within `timeout` seconds. Every session
ends in exactly one of: greeted (220), refused (any other greeting code,
counted by code) or failed (connect error, timeout, closed before a
greeting; counted by reason with the first error of each). The greeted ones
are then held open, saying nothing, for `hold` seconds; one the server
closes (or speaks on) before the end is counted as dropped. Then every
session is closed (no QUIT). With a `pid`, the resident memory of that
process and its children (loadtest.memory) is read before the first connect
and at the end of the hold.

Bounds: at most MAX_CONNECTIONS sessions, a hold of at most MAX_HOLD, target
and sources on loopback only (`UsageError` otherwise). The open-files limit
is raised to what the sessions need when the hard limit allows
(`UsageError` when it does not). `IdleReport` renders as text or JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from loadtest.errors import UsageError
from loadtest.memory import MemorySample, mib, sample
from loadtest.smtp import READ_LIMIT, SessionLost, parse_reply_line

MAX_CONNECTIONS = 100_000
MAX_HOLD = 3600.0
SPARE_FILES = 256  # descriptors kept for everything but the sessions


@dataclass(frozen=True)
class IdleOptions:
    host: str
    port: int
    connections: int
    sources: tuple[str, ...] = ()
    pid: int | None = None
    hold: float = 5.0
    concurrency: int = 100
    timeout: float = 10.0

    def check(self) -> None:
        """UsageError unless the run is bounded and on loopback."""
        if not 1 <= self.connections <= MAX_CONNECTIONS:
            raise UsageError(f"--connections must be 1..{MAX_CONNECTIONS}")
        if not 0 < self.hold <= MAX_HOLD:
            raise UsageError(f"--hold must be above 0 and at most {MAX_HOLD:g} s")
        for host in (self.host, *self.sources):
            require_loopback(host)


def require_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(f"{host!r} is not a loopback address: idle runs stay on this machine")


def ensure_open_files(needed: int) -> int:
    """Raise the soft open-files limit to `needed` if below; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise UsageError(
            f"{needed} open files needed and the hard limit is {hard}: "
            "fewer --connections, or raise `ulimit -Hn`"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed


@dataclass
class _Tally:
    greeted: int = 0
    refused: Counter[int] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    failure_examples: dict[str, str] = field(default_factory=dict)
    dropped: int = 0

    def fail(self, reason: str, detail: str) -> None:
        self.failed[reason] += 1
        self.failure_examples.setdefault(reason, detail)


@dataclass(frozen=True)
class IdleReport:
    options: IdleOptions
    greeted: int
    refused: dict[int, int]
    failed: dict[str, int]
    failure_examples: dict[str, str]
    dropped: int
    open_seconds: float
    memory_before: MemorySample | None = None
    memory_held: MemorySample | None = None

    @property
    def open_rate(self) -> float:
        settled = self.greeted + sum(self.refused.values()) + sum(self.failed.values())
        return settled / self.open_seconds if self.open_seconds > 0 else 0.0

    @property
    def per_connection_kib(self) -> float | None:
        """Memory grown per greeted session, between the two samples."""
        if self.memory_before is None or self.memory_held is None or not self.greeted:
            return None
        return (self.memory_held.rss_kib - self.memory_before.rss_kib) / self.greeted

    def to_json(self) -> dict[str, Any]:
        o = self.options
        return {
            "target": f"{o.host}:{o.port}",
            "sources": list(o.sources),
            "connections": o.connections,
            "concurrency": o.concurrency,
            "hold_s": o.hold,
            "greeted": self.greeted,
            "refused": {str(code): n for code, n in self.refused.items()},
            "failed": dict(self.failed),
            "failure_examples": dict(self.failure_examples),
            "dropped_during_hold": self.dropped,
            "open_s": self.open_seconds,
            "open_rate": self.open_rate,
            "memory_before": self.memory_before.to_json() if self.memory_before else None,
            "memory_held": self.memory_held.to_json() if self.memory_held else None,
            "per_connection_kib": self.per_connection_kib,
        }

    def to_text(self) -> str:
        o = self.options
        sources = f" from {_sources(o.sources)}" if o.sources else ""
        rows = [
            ("target", f"{o.host}:{o.port}{sources}"),
            (
                "connections",
                f"{o.connections} asked: greeted {self.greeted}, "
                f"refused {sum(self.refused.values())}, failed {sum(self.failed.values())}",
            ),
            ("refused by code", _counts(self.refused)),
            ("failed by reason", _counts(self.failed)),
            *((f"  first {reason}", text) for reason, text in self.failure_examples.items()),
            (
                "opened in",
                f"{self.open_seconds:.2f} s ({self.open_rate:.0f}/s, "
                f"{o.concurrency} connects at a time)",
            ),
            ("held", f"{o.hold:g} s idle; closed by the server meanwhile: {self.dropped}"),
            *self._memory_rows(),
        ]
        return "\n".join(f"{name:<17}{value}" for name, value in rows if value) + "\n"

    def _memory_rows(self) -> list[tuple[str, str]]:
        before, held = self.memory_before, self.memory_held
        if before is None or held is None:
            return []
        per = self.per_connection_kib
        growth = f"+{mib(held.rss_kib - before.rss_kib)}" + (
            f", {per:.1f} KiB per greeted connection" if per is not None else ""
        )
        return [
            ("memory", f"VmRSS of pid {held.pid}, {held.scope}"),
            ("  before", mib(before.rss_kib)),
            ("  held", f"{mib(held.rss_kib)} ({growth})"),
        ]


def _sources(sources: tuple[str, ...]) -> str:
    if len(sources) <= 3:
        return ", ".join(sources)
    return f"{len(sources)} addresses ({sources[0]} ... {sources[-1]})"


def _counts(counts: dict[int, int] | dict[str, int]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in counts.items())


class _Idle:
    def __init__(self, options: IdleOptions) -> None:
        self.options = options
        self.tally = _Tally()
        self.gate = asyncio.Semaphore(options.concurrency)
        self.opened = 0  # sessions whose opening ended, whatever the outcome
        self.all_settled = asyncio.Event()
        self.release = asyncio.Event()

    async def connection(self, i: int) -> None:
        opened = await self._open(i)
        if opened is None:
            return
        reader, writer = opened
        try:
            if await self._idle(reader):
                self.tally.dropped += 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _open(self, i: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Connect and read the greeting; the open session when it was 220, else None."""
        o = self.options
        source = o.sources[i % len(o.sources)] if o.sources else None
        writer: asyncio.StreamWriter | None = None
        stage = "connect"
        try:
            async with self.gate, asyncio.timeout(o.timeout):
                reader, writer = await asyncio.open_connection(
                    o.host, o.port, local_addr=(source, 0) if source else None, limit=READ_LIMIT
                )
                stage = "closed"
                code = await _greeting(reader)
            if code == 220:
                self.tally.greeted += 1
                return reader, writer
            self.tally.refused[code] += 1
        except TimeoutError:
            self.tally.fail("timeout", f"no greeting in {o.timeout:g} s")
        except (OSError, SessionLost) as exc:
            self.tally.fail(stage, str(exc))
        finally:
            self.opened += 1
            if self.opened >= o.connections:
                self.all_settled.set()
        if writer is not None:
            writer.close()
        return None

    async def _idle(self, reader: asyncio.StreamReader) -> bool:
        """Wait for the release; True when the server spoke or closed before it."""
        heard = asyncio.ensure_future(reader.read(1))
        released = asyncio.ensure_future(self.release.wait())
        try:
            await asyncio.wait({heard, released}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (heard, released):
                task.cancel()
            await asyncio.gather(heard, released, return_exceptions=True)
        return heard.done() and not heard.cancelled()


async def _greeting(reader: asyncio.StreamReader) -> int:
    """The code of the server's greeting (all lines of it read); SessionLost if none."""
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise SessionLost(f"closed before a greeting: {exc!r}") from exc
        code, last, _ = parse_reply_line(line)
        if last:
            return code


Sampler = Callable[[int], MemorySample]


async def hold_idle(
    options: IdleOptions,
    memory: Sampler = sample,
    while_held: Callable[[], Awaitable[object]] | None = None,
) -> IdleReport:
    """Open, hold and close the sessions; see the module docstring.

    `while_held`, when given, is awaited once every session is settled, at the start of
    the hold; the hold then lasts `options.hold` or until it returns, whichever is later.
    """
    options.check()
    ensure_open_files(options.connections + SPARE_FILES)
    pid = options.pid
    before = memory(pid) if pid is not None else None
    state = _Idle(options)
    started = time.monotonic()
    tasks = [asyncio.create_task(state.connection(i)) for i in range(options.connections)]
    try:
        await state.all_settled.wait()
        open_seconds = time.monotonic() - started
        if while_held is None:
            await asyncio.sleep(options.hold)
        else:
            await asyncio.gather(asyncio.sleep(options.hold), while_held())
        held = memory(pid) if pid is not None else None
    finally:
        state.release.set()
        await asyncio.gather(*tasks)
    t = state.tally
    return IdleReport(
        options, t.greeted, dict(sorted(t.refused.items())), dict(sorted(t.failed.items())),
        dict(sorted(t.failure_examples.items())), t.dropped, open_seconds, before, held,
    )  # fmt: skip
