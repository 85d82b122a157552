"""Postfix's smtp-sink as the comparison's next hop: a C sink that only counts.

`SinkCounter` reads what `smtp-sink -c` prints: a record `sess=S quit=Q
mesg=M` ended by a carriage return each time a session ends, a QUIT is
answered or a message's "." is received, each counter cumulative. `feed(data,
now)` takes any piece of that output (a record may be split over pieces) and
notes `now` as the time of the last arrival whenever `mesg` grows.

`SmtpSinkProcess.start(directory)` runs `smtp-sink -c [-u nobody]
127.0.0.1:PORT BACKLOG` on a free port (as root smtp-sink must drop to a
user), waits for its greeting and reads its output through a pipe in a task
of the running loop, so its counter is current and smtp-sink never blocks on
a full pipe. It gives the interface of the Python sink's process
(`loadtest.processes.SinkProcess`) that the comparison uses: `smtp`, `stats()`
(the same keys; every message counts as `without_id`: smtp-sink reads no
ids), `drain(n, stall)` and `stop()`. It cannot check ids, so `expect(ids)`
is the stats with the loss left for the caller to count from the numbers
(loadtest.harness), and duplicates are not checked.

A missing smtp-sink is a `TargetError` naming it; so is one that exits or
does not greet within the start timeout (its stderr is in `smtp-sink.log`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadtest.errors import TargetError
from loadtest.ports import free_port
from loadtest.processes import find_tool, stop_process, wait_for_arrivals, wait_for_greeting

BACKLOG = 1024
UNPRIVILEGED = "nobody"
READ_SIZE = 65536
_RECORD = re.compile(rb"sess=(\d+) quit=(\d+) mesg=(\d+)")


class SinkCounter:
    """The counters of `smtp-sink -c`'s output; see the module docstring."""

    def __init__(self) -> None:
        self.sessions = 0
        self.quits = 0
        self.messages = 0
        self.first_arrival: float | None = None
        self.last_arrival: float | None = None
        self._partial = b""

    def feed(self, data: bytes, now: float) -> None:
        *complete, self._partial = (self._partial + data).split(b"\r")
        for record in reversed(complete):  # counters are cumulative: the last one says all
            if (match := _RECORD.search(record)) is not None:
                sessions, quits, messages = (int(g) for g in match.groups())
                self._update(sessions, quits, messages, now)
                return

    def _update(self, sessions: int, quits: int, messages: int, now: float) -> None:
        self.sessions, self.quits = sessions, quits
        if messages > self.messages:
            if self.first_arrival is None:
                self.first_arrival = now
            self.last_arrival = now
            self.messages = messages

    def stats(self) -> dict[str, Any]:
        """The Python sink's stats keys; no ids are read, so none are checked."""
        return {
            "messages": self.messages,
            "sessions": self.sessions,
            "unique_ids": 0,
            "duplicates": None,
            "without_id": self.messages,
            "first_arrival": self.first_arrival,
            "last_arrival": self.last_arrival,
            "expected": None,
            "lost": None,
            "unexpected": None,
        }


def sink_command(path: str, port: int, as_root: bool) -> list[str]:
    """`smtp-sink -c` on 127.0.0.1:`port`; as root it must drop to an unprivileged user."""
    user = ["-u", UNPRIVILEGED] if as_root else []
    return [path, "-c", *user, f"127.0.0.1:{port}", str(BACKLOG)]


class SmtpSinkProcess:
    """`smtp-sink -c` as a child process; see the module docstring."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        port: int,
        log: Path,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.proc = proc
        self.smtp = ("127.0.0.1", port)
        self.log = log
        self.clock = clock
        self.counter = SinkCounter()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, directory: Path, timeout: float = 30.0) -> SmtpSinkProcess:
        path = find_tool("smtp-sink")
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        port, log = free_port(), directory / "smtp-sink.log"
        with log.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                *sink_command(path, port, os.geteuid() == 0),
                stdout=asyncio.subprocess.PIPE, stderr=err, stdin=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
        sink = cls(proc, port, log)
        try:
            await sink._ready(timeout)
        except BaseException:
            await sink.stop()
            raise
        return sink

    async def _ready(self, timeout: float) -> None:
        greeting = asyncio.create_task(wait_for_greeting(*self.smtp, timeout, "smtp-sink"))
        exited = asyncio.create_task(self.proc.wait())
        await asyncio.wait({greeting, exited}, return_when=asyncio.FIRST_COMPLETED)
        exited.cancel()
        if not greeting.done():
            greeting.cancel()
            said = self.log.read_text(errors="replace").strip().splitlines()[-1:]
            raise TargetError(
                f"smtp-sink exited {self.proc.returncode}: {''.join(said)}; see {self.log}"
            )
        try:
            greeting.result()
        except TargetError as exc:
            raise TargetError(f"{exc}; see {self.log}") from exc

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while chunk := await self.proc.stdout.read(READ_SIZE):
            self.counter.feed(chunk, self.clock())

    async def stats(self) -> dict[str, Any]:
        return self.counter.stats()

    async def expect(self, ids: list[str]) -> dict[str, Any]:
        """The stats: smtp-sink reads no ids, so it can check none."""
        return self.counter.stats()

    async def drain(self, count: int, stall: float, key: str = "messages") -> dict[str, Any]:
        """Stats once `count` messages arrived, or once none arrived for `stall` s (only
        messages are counted, whatever the `key`: no ids are read)."""
        return await wait_for_arrivals(self.stats, count, stall, "messages")

    async def stop(self) -> None:
        await stop_process(self.proc)
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(self.reader, 5.0)  # the rest of its output, to EOF
