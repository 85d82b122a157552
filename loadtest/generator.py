"""The load generator: N messages over C concurrent SMTP sessions, paced or flat out.

`run(options)` starts one worker per connection slot (at most one per
message); worker c sends from `sources[c % len(sources)]`. Workers take
message numbers from one `Plan` (which paces them when a rate is given and
stops them at the message count, the schedule's end or the duration), send
`per_connection` messages over a session, then QUIT and open a new one. Each
message ends in the `Tally` as accepted, refused by code or failed (see
loadtest.report); a session that failed or got 421 is dropped and the worker
opens another for its next message. `options.timeout` bounds each message,
connecting included. The result holds the `Report` and the ids of the
accepted messages (for the sink's loss and duplicate count).

`progress_line(...)` renders the live state on one line (a bar when the
message count is known); `run(..., progress=stream)` rewrites it on that
stream twice a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from loadtest.content import Message, MessageFactory, SizeDist, Template
from loadtest.rate import Clock, Plan, RateSchedule, SystemClock
from loadtest.report import Report, Tally
from loadtest.smtp import Outcome, Refused, Session, SessionLost

PROGRESS_INTERVAL = 0.5
BAR = 20


def new_run_id() -> str:
    return f"{int(time.time()):x}{secrets.token_hex(2)}"


@dataclass(frozen=True)
class RunOptions:
    host: str
    port: int
    messages: int | None = 1000
    connections: int = 10
    per_connection: int = 100
    rcpts: int = 1
    size: SizeDist = SizeDist("fixed", 2048)
    sender: Template = Template("load{n}@mdai.gov.kz")
    recipient: Template = Template("user{n}.{r}@example.org")
    sources: tuple[str, ...] = ()
    rate: RateSchedule | None = None
    duration: float | None = None
    helo: str = "loadtest.invalid"
    timeout: float = 60.0
    pipelining: bool = True
    run_id: str = field(default_factory=new_run_id)
    seed: int = 0


class LoadShape(Protocol):
    """What a benchmark's options say of the load it drives (compare, restart)."""

    @property
    def messages(self) -> int: ...
    @property
    def connections(self) -> int: ...
    @property
    def per_connection(self) -> int: ...
    @property
    def size(self) -> SizeDist: ...
    @property
    def sources(self) -> tuple[str, ...]: ...
    @property
    def timeout(self) -> float: ...


def load_against(
    shape: LoadShape, port: int, name: str, rate: RateSchedule | None = None
) -> RunOptions:
    """The load of `shape` against 127.0.0.1:`port`, its run id starting with `name`."""
    return RunOptions(
        host="127.0.0.1",
        port=port,
        messages=shape.messages,
        connections=shape.connections,
        per_connection=shape.per_connection,
        size=shape.size,
        sources=shape.sources,
        timeout=shape.timeout,
        rate=rate,
        run_id=f"{name}-{new_run_id()}",
    )


def run_header(shape: LoadShape, workers: int | None) -> dict[str, Any]:
    """The "load" and "machine" parts of a benchmark's JSON report."""
    load = {
        "messages": shape.messages,
        "connections": shape.connections,
        "per_connection": shape.per_connection,
        "size": shape.size.describe(),
        "sources": list(shape.sources),
        "workers": workers,
    }
    return {"load": load, "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}


@dataclass(frozen=True)
class RunResult:
    report: Report
    accepted_ids: list[str]
    latencies: list[float] = field(default_factory=list)  # accept latencies (s), to pool runs


class _Run:
    def __init__(self, options: RunOptions, clock: Clock) -> None:
        self.options = options
        self.factory = MessageFactory(
            options.run_id,
            options.sender,
            options.recipient,
            options.rcpts,
            options.size,
            options.seed,
        )
        self.tally = Tally()
        self.started_at = time.time()
        self.plan = Plan(clock, options.messages, options.rate, options.duration)

    async def worker(self, c: int) -> None:
        sources = self.options.sources
        source = sources[c % len(sources)] if sources else None
        session: Session | None = None
        used = 0
        try:
            while (n := await self.plan.next()) is not None:
                if session is not None and (
                    not session.alive or used >= self.options.per_connection
                ):
                    await session.quit()
                    session = None
                if session is None:
                    used = 0
                message = self.factory.make(n, c)
                session = await self._one(session, source, message)
                used += 1
        finally:
            if session is not None:
                await session.quit()

    async def _one(
        self, session: Session | None, source: str | None, message: Message
    ) -> Session | None:
        """Send one message, opening a session first if needed; the session to go on with."""
        stage = "connect"
        try:
            async with asyncio.timeout(self.options.timeout):
                if session is None:
                    session = await self._open(source)
                stage = "closed"
                self._record(message, await session.send(message))
                return session
        except Refused as exc:
            self.tally.refuse(exc.code)
        except (SessionLost, OSError) as exc:
            self.tally.fail(stage, str(exc))
        except TimeoutError:
            self.tally.fail("timeout", f"no reply in {self.options.timeout:g} s")
        if session is not None:
            session.abort()
        return None

    async def _open(self, source: str | None) -> Session:
        opts = self.options
        session = await Session.open(opts.host, opts.port, source, opts.helo, opts.pipelining)
        self.tally.sessions += 1
        if self.tally.pipelining is None:
            self.tally.pipelining = session.pipelining
        return session

    def _record(self, message: Message, outcome: Outcome) -> None:
        if outcome.accepted and outcome.latency is not None:
            self.tally.accept(message.msg_id, len(message.text), outcome.latency)
        else:
            self.tally.refuse(outcome.code)
        self.tally.rcpt_refused.update(outcome.rcpt_refused)

    def report(self) -> Report:
        opts = self.options
        return Report.of(
            self.tally,
            self.plan.elapsed(),
            target=f"{opts.host}:{opts.port}",
            run_id=opts.run_id,
            connections=opts.connections,
            per_connection=opts.per_connection,
            size=opts.size.describe(),
            rate=opts.rate.describe() if opts.rate else "as fast as possible",
            started_at=self.started_at,
            finished_at=time.time(),
        )


async def run(
    options: RunOptions, clock: Clock | None = None, progress: TextIO | None = None
) -> RunResult:
    """Run the load; see the module docstring."""
    state = _Run(options, clock or SystemClock())
    slots = options.connections
    if options.messages is not None:
        slots = max(1, min(slots, options.messages))
    printer = asyncio.create_task(_progress(state, progress)) if progress else None
    try:
        await asyncio.gather(*(state.worker(c) for c in range(slots)))
    finally:
        if printer is not None:
            printer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await printer
    if progress is not None:
        line = progress_line(state.tally, options.messages, state.plan.elapsed())
        progress.write("\r" + line + "\x1b[K\n")
    return RunResult(state.report(), state.tally.accepted_ids, state.tally.latencies)


def progress_line(tally: Tally, total: int | None, elapsed: float) -> str:
    """One line of live state: a bar when the total is known, counts, accept rate, time."""
    bar, of = "", ""
    if total:
        done = min(BAR, BAR * tally.sent // total)
        bar, of = f"[{'#' * done}{'.' * (BAR - done)}] ", f"/{total}"
    rate = tally.accepted / elapsed if elapsed > 0 else 0.0
    return (
        f"{bar}sent {tally.sent}{of}  accepted {tally.accepted}  "
        f"refused {sum(tally.refused.values())}  failed {sum(tally.failed.values())}  "
        f"{rate:.0f} msg/s  {elapsed:.1f} s"
    )


async def _progress(state: _Run, stream: TextIO) -> None:
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL)
        line = progress_line(state.tally, state.options.messages, state.plan.elapsed())
        stream.write("\r" + line + "\x1b[K")
        stream.flush()
