"""DKIM signing in processes of its own beside a worker, over pipes.

`SigningProcesses(n, command, clock)` keeps `n` signing processes
(`relay.deliver.sign_child`) running beside the worker's event loop.
`sign(data, domains, sender_domain)` sends the message to the one with the
fewest requests waiting and awaits its DKIM-Signature fields; the event loop
only writes the request and reads the reply, so dkimpy's Python steps run on
another core instead of taking turns with the loop for the GIL.

Promises and failures:
- `sign` raises `SignerUnavailable` at once when no process is ready (not
  started yet, restarting, or could not be started): the caller signs in a
  thread instead, so mail is still signed.
- A request the process refused, or that its process died or hung over
  (`timeout` seconds of the injected clock without a reply, checked every
  second and by `check_hung`), raises `SigningError`: the caller queues that
  message unsigned, as when signing in a thread fails. A hung process is
  killed.
- A process that exits is started again after `RESTART_DELAY` seconds,
  doubling up to `RESTART_DELAY_MAX` while it keeps failing to start; every
  exit and restart is logged at WARNING.
- `stop` closes the pipes, so the processes end; one that does not within
  `STOP_GRACE` seconds is killed. Nothing here blocks the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sys
from collections.abc import Sequence

from relay.deliver.sign_frames import READY, REPLY, encode_request
from ugem.core.clock import Clock
from ugem.core.errors import SigningError
from ugem.core.log import event

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0  # seconds for a new process to load and say READY
RESTART_DELAY = 1.0  # seconds before an exited process is started again...
RESTART_DELAY_MAX = 60.0  # ...doubling up to this while it keeps failing
HUNG_CHECK = 1.0  # seconds between checks for a request past its timeout
STOP_GRACE = 5.0  # seconds a process has to end after its pipe closed


class SignerUnavailable(SigningError):
    """No signing process is ready; sign in a thread instead."""


def child_command(key_dir: str, gateway_domain: str) -> list[str]:
    """The command line of one signing process of this interpreter."""
    return [sys.executable, "-m", "relay.deliver.sign_child", key_dir, gateway_domain]


class SigningChild:
    """One signing process: its pipes, its requests in flight, its restarts."""

    def __init__(self, command: Sequence[str], clock: Clock, timeout: float, name: str) -> None:
        self.command, self.clock, self.timeout, self.name = list(command), clock, timeout, name
        self.proc: asyncio.subprocess.Process | None = None
        self.ready = False
        self.pending: dict[int, tuple[float, asyncio.Future[bytes]]] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.Task[None] | None = None
        self._restart_at = 0.0
        self._delay = RESTART_DELAY
        self.starting: asyncio.Task[None] | None = None  # a start in the background
        self._stopping = False
        self._hung_timer: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        """Start the process and wait until it is READY (logged, never raised, if not)."""
        try:
            await self._spawn()
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            await self._kill()
            self._failed_start(str(exc) or type(exc).__name__)

    async def _spawn(self) -> None:
        proc = self.proc = await asyncio.create_subprocess_exec(
            *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert proc.stdout is not None
        async with asyncio.timeout(START_TIMEOUT):
            hello = await proc.stdout.readexactly(len(READY))
        if hello != READY:
            raise ValueError(f"it said {hello!r}, not READY")
        self.ready, self._delay = True, RESTART_DELAY
        self._reader = asyncio.create_task(self._read(proc), name=f"{self.name}_replies")
        event(log, "dkim_signer_started", logging.INFO, signer=self.name, pid=proc.pid)

    def _failed_start(self, error: str) -> None:
        self._restart_at = self.clock.monotonic() + self._delay
        event(
            log,
            "dkim_signer_start_failed",
            logging.WARNING,
            signer=self.name,
            error=error,
            retry_in=self._delay,
        )
        self._delay = min(self._delay * 2, RESTART_DELAY_MAX)

    def restart_if_due(self) -> None:
        """Start the process again in the background once its restart delay has passed."""
        if self.ready or self._stopping or (self.starting and not self.starting.done()):
            return
        if self.clock.monotonic() >= self._restart_at:
            loop = asyncio.get_running_loop()
            self.starting = loop.create_task(self.start(), name=f"{self.name}_start")

    async def sign(self, data: bytes, domains: tuple[str, ...], sender: str, now: float) -> bytes:
        proc = self.proc
        if not self.ready or proc is None or proc.stdin is None:
            raise SignerUnavailable("no signing process is ready")
        rid = next(self._ids) & 0xFFFFFFFF
        done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.pending[rid] = (self.clock.monotonic(), done)
        self._watch_hung()
        try:
            proc.stdin.write(encode_request(rid, now, data, domains, sender))
            await proc.stdin.drain()
        except (ConnectionError, OSError, RuntimeError) as exc:  # RuntimeError: pipe closed
            self._lost(f"its pipe broke: {exc!r}")
        return await done

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        """Hand each reply to its request; at the end of the output, the process is lost."""
        assert proc.stdout is not None
        try:
            while True:
                head = await proc.stdout.readexactly(REPLY.size)
                rid, ok, size = REPLY.unpack(head)
                payload = await proc.stdout.readexactly(size)
                self._reply(rid, ok, payload)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        if self.proc is proc:
            self._lost(f"it exited ({await _ended(proc)})")

    def _reply(self, rid: int, ok: int, payload: bytes) -> None:
        entry = self.pending.pop(rid, None)
        if entry is None or entry[1].done():
            return
        if ok:
            entry[1].set_result(payload)
        else:
            entry[1].set_exception(SigningError(payload.decode("utf-8", "replace")))

    def _lost(self, why: str, kill: bool = True) -> None:
        """The process is gone or useless: fail what waits on it, kill it, restart later."""
        if not self.ready:
            return
        self.ready = False
        for _, done in self.pending.values():
            if not done.done():
                done.set_exception(SigningError(f"signing process {self.name}: {why}"))
        self.pending.clear()
        if not self._stopping:
            self._restart_at = self.clock.monotonic() + self._delay
            event(log, "dkim_signer_lost", logging.WARNING, signer=self.name, error=why)
        proc, self.proc = self.proc, None
        if kill and proc is not None and proc.returncode is None:
            proc.kill()

    def _watch_hung(self) -> None:
        if self._hung_timer is None:
            loop = asyncio.get_running_loop()
            self._hung_timer = loop.call_later(HUNG_CHECK, self._hung_tick)

    def _hung_tick(self) -> None:
        self._hung_timer = None
        self.check_hung()
        if self.pending:
            self._watch_hung()

    def check_hung(self) -> None:
        """Kill the process if its oldest request has waited longer than `timeout`."""
        if not self.pending:
            return
        oldest = next(iter(self.pending.values()))[0]
        if self.clock.monotonic() - oldest > self.timeout:
            self._lost(f"no reply in {self.timeout:g} s")

    async def stop(self) -> None:
        self._stopping = True
        if self.starting is not None:
            await self.starting
        if self._hung_timer is not None:
            self._hung_timer.cancel()
        proc = self.proc
        self._lost("the worker stops", kill=False)
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()
        if self._reader is not None:
            await self._reader
        if proc is not None:
            await _ended(proc)

    async def _kill(self) -> None:
        proc, self.proc, self.ready = self.proc, None, False
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _ended(proc: asyncio.subprocess.Process) -> int:
    """Wait for `proc` to end, killing it after STOP_GRACE seconds; its exit status."""
    try:
        async with asyncio.timeout(STOP_GRACE):
            return await proc.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        return await proc.wait()


class SigningProcesses:
    """`count` signing processes; each request goes to the ready one with the least waiting."""

    def __init__(self, count: int, command: Sequence[str], clock: Clock, timeout: float) -> None:
        self.clock = clock
        self.children = [
            SigningChild(command, clock, timeout, f"dkim_signer_{i}") for i in range(count)
        ]

    async def start(self) -> None:
        await asyncio.gather(*(child.start() for child in self.children))

    def ready(self) -> int:
        """How many processes are ready."""
        return sum(child.ready for child in self.children)

    async def sign(self, data: bytes, domains: tuple[str, ...], sender: str) -> bytes:
        """The DKIM-Signature fields of `data` (b"" when no candidate domain has a key)."""
        best: SigningChild | None = None
        for child in self.children:
            if not child.ready:
                child.restart_if_due()
            elif best is None or len(child.pending) < len(best.pending):
                best = child
        if best is None:
            raise SignerUnavailable("no signing process is ready")
        return await best.sign(data, domains, sender, self.clock.now())

    def check_hung(self) -> None:
        for child in self.children:
            child.check_hung()

    async def stop(self) -> None:
        await asyncio.gather(*(child.stop() for child in self.children))
