"""Child processes the comparison drives, and the small waits they need.

`free_port(host)` (loadtest.ports) is a port free on `host` now, outside the
kernel's ephemeral range (the caller binds it soon after).
`wait_for_greeting(host, port, deadline, what, child)` waits until an SMTP
server there says 220 (a TargetError at once when `child`, the server's
process, exits first). `run_command(command)` runs a program to its end and
returns its stdout. `stop_group(proc)` ends a child started in its own
session: SIGTERM, then SIGKILL to what is left of its process group.
`SinkProcess.start(directory)` runs `python -m loadtest sink` on free
loopback ports, or SMTP on `listen` when given (it reports them on its first
stdout line), and talks to it over its control channel: `stats()`, `expect(ids)`, `drain(n, stall)`
(waits until n distinct ids arrived, or n messages with `key="messages"`, or
nothing arrived for `stall` seconds: `wait_for_arrivals`, which any sink's
stats serve); `stop()` ends it with SIGTERM, SIGKILL after a grace.
`find_tool(name)` is the path of a program such as Postfix's smtp-source (on
PATH or in /usr/sbin). Every failure to find, start or answer is a
`TargetError` naming the program or the process and its log file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from loadtest import control
from loadtest.errors import TargetError
from loadtest.spec import parse_hostport

STOP_GRACE = 15.0
POLL = 0.2
SBIN = ("/usr/sbin", "/usr/local/sbin")  # where Postfix's tools live, often off a user's PATH


def find_tool(name: str) -> str:
    """The path of the program `name` (on PATH or in /usr/sbin); TargetError naming it."""
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))
    if found is None:
        where = ", ".join([*SBIN, "PATH"])
        raise TargetError(f"{name} is not installed (looked in {where}): install Postfix")
    return found


async def wait_for_arrivals(
    stats: Callable[[], Awaitable[dict[str, Any]]], count: int, stall: float, key: str
) -> dict[str, Any]:
    """Stats once their `key` reached `count`, or once no message arrived for `stall` s."""
    current = await stats()
    seen, since = current["messages"], time.monotonic()
    while current[key] < count and time.monotonic() - since < stall:
        await asyncio.sleep(POLL)
        current = await stats()
        if current["messages"] != seen:
            seen, since = current["messages"], time.monotonic()
    return current


async def wait_for_greeting(
    host: str, port: int, timeout: float, what: str, child: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until the SMTP server at host:port greets with 220; TargetError after `timeout`,
    or as soon as `child` (the server's process, when given) has exited."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            raise TargetError(f"{what} exited {child.returncode} before it greeted")
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            last = str(exc)
            await asyncio.sleep(POLL)
            continue
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=5)
            writer.write(b"QUIT\r\n")
            if line.startswith(b"220"):
                return
            last = line.decode("utf-8", "replace").strip()
        except (OSError, TimeoutError) as exc:
            last = str(exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await asyncio.sleep(POLL)
    raise TargetError(f"{what} on {host}:{port} did not greet in {timeout:g} s: {last}")


async def stop_process(proc: asyncio.subprocess.Process, grace: float = STOP_GRACE) -> int:
    """SIGTERM, then SIGKILL after `grace` seconds; the exit code."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    return proc.returncode if proc.returncode is not None else -1


async def stop_group(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE) -> int | None:
    """SIGTERM to a child started with `start_new_session`, then, once it exits or after
    `grace` s, SIGKILL to what is left of its process group (workers); its exit code
    (None when it was not running). Never raises."""
    if proc.poll() is not None:
        return None
    proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        await asyncio.to_thread(proc.wait, grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    return await asyncio.to_thread(proc.wait)


def run_command(
    command: list[str],
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 60.0,
) -> str:
    """Run a command; its stdout. TargetError with its output when it fails."""
    try:
        done = subprocess.run(
            command, input=stdin, capture_output=True, text=True, env=env, timeout=timeout,
            check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TargetError(f"{' '.join(command)}: {exc}") from exc
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()
        raise TargetError(f"{' '.join(command)} exited {done.returncode}: {output}")
    return done.stdout


class SinkProcess:
    """`python -m loadtest sink` as a child process; see the module docstring."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log
        self.smtp: tuple[str, int] = ("", 0)
        self.control: tuple[str, int] = ("", 0)

    @classmethod
    async def start(
        cls, directory: Path, timeout: float = 30.0, listen: tuple[str, int] = ("127.0.0.1", 0)
    ) -> SinkProcess:
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        log = directory / "sink.log"
        with log.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "loadtest", "sink", "--listen", f"{listen[0]}:{listen[1]}",
                "--control", "127.0.0.1:0", "--stats-file", str(directory / "sink-stats.json"),
                stdout=asyncio.subprocess.PIPE, stderr=err,
            )  # fmt: skip
        sink = cls(proc, log)
        try:
            await sink._ready(timeout)
        except BaseException:
            await stop_process(proc)
            raise
        return sink

    async def _ready(self, timeout: float) -> None:
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            ready = json.loads(line)
            self.smtp = parse_hostport(ready["smtp"])
            self.control = parse_hostport(ready["control"])
        except (TimeoutError, ValueError, KeyError, TypeError) as exc:
            raise TargetError(f"the sink did not start ({exc!r}); see {self.log}") from exc

    async def request(self, method: str, path: str, body: bytes = b"") -> dict[str, Any]:
        return await asyncio.to_thread(control.request, self.control, method, path, body)

    async def stats(self) -> dict[str, Any]:
        return await self.request("GET", "/stats")

    async def expect(self, ids: list[str]) -> dict[str, Any]:
        return await self.request("POST", "/expect", "\n".join(ids).encode())

    async def drain(self, count: int, stall: float, key: str = "unique_ids") -> dict[str, Any]:
        """Stats once `count` distinct ids (or `key`) arrived, or none did for `stall` s."""
        return await wait_for_arrivals(self.stats, count, stall, key)

    async def stop(self) -> None:
        await stop_process(self.proc)
