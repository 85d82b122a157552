"""`ugem serve --workers N`: N node processes sharing the SMTP port, and their supervisor.

The supervisor runs no node itself. It binds the SMTP port once
(`relay.accept.listener.bind_listener`: no SO_REUSEPORT, so a process that is
not one of this node's workers gets "address in use", as with Postfix; a
port it cannot bind is one line naming `smtp.listen`, exit 1) and starts
each worker as `ugem serve --worker-index I --smtp-fd FD` (the same config
file and environment, with `UGEM_NODE_WORKERS=N`, the listening socket
inherited), so every worker accepts on that one socket; each has its own
spool; worker 0 serves the node's admin listener, every other worker its
own on a private loopback port that worker 0 asks (admin.node_wide). A worker that dies is
started again after a back-off (1 s doubling to 30 s) and the death is logged
at ERROR. SIGHUP is passed to every running worker (each reloads its STARTTLS
certificate; the supervisor itself keeps running). SIGTERM or SIGINT is passed
to every worker; the supervisor waits for them (a worker still alive after
`STOP_TIMEOUT` is killed) and exits 0 when all stopped cleanly, 1 otherwise.
A worker is told the supervisor's pid and stops when the supervisor dies,
however it died (ugem.parent_death).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys

from ugem.core.log import event
from ugem.parent_death import PARENT_ENV

log = logging.getLogger(__name__)

STOP_TIMEOUT = 30.0  # seconds a worker gets to finish after SIGTERM
MAX_BACKOFF = 30.0


class Supervisor:
    def __init__(self, workers: int, config_path: str | None, smtp: socket.socket) -> None:
        self.workers = workers
        self.config_path = config_path
        self.smtp = smtp  # the SMTP port's listening socket, every worker's
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.stopping = asyncio.Event()
        self.exit_codes: dict[int, int] = {}
        self._spawning = asyncio.Lock()

    def _argv(self, index: int) -> list[str]:
        config = ["--config", self.config_path] if self.config_path else []
        fd = ["--smtp-fd", str(self.smtp.fileno())]
        argv = ["serve", "--worker-index", str(index), *fd, *config]
        return [sys.executable, "-m", "ugem.cli", *argv]

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        env = {**os.environ, "UGEM_NODE_WORKERS": str(self.workers), PARENT_ENV: str(os.getpid())}
        # The worker starts with SIGHUP blocked (the mask is inherited): one sent before its
        # handler is in place waits instead of killing it, and is handled once it is ready.
        # One spawn at a time, so no other spawn's restore can leave SIGHUP blocked here.
        async with self._spawning:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self._argv(index), env=env, pass_fds=(self.smtp.fileno(),)
                )
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
        self.procs[index] = proc
        event(log, "worker_started", worker=index, pid=proc.pid)
        return proc

    async def _keep(self, index: int) -> None:
        """Run worker `index` until the supervisor stops, starting it again when it dies."""
        backoff = 1.0
        while True:
            proc = await self._spawn(index)
            code = await proc.wait()
            self.exit_codes[index] = code
            if self.stopping.is_set():
                return
            event(
                log,
                "worker_died",
                logging.ERROR,
                worker=index,
                pid=proc.pid,
                code=code,
                restart_in=backoff,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), backoff)
                return
            backoff = min(backoff * 2, MAX_BACKOFF)

    def reload(self) -> None:
        """SIGHUP: pass it on to every worker that is running."""
        running = [proc for proc in self.procs.values() if proc.returncode is None]
        for proc in running:
            proc.send_signal(signal.SIGHUP)
        event(log, "supervisor_reload", workers=len(running))

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        keepers = [asyncio.create_task(self._keep(i)) for i in range(self.workers)]
        await self.stopping.wait()
        event(log, "supervisor_stopping", workers=self.workers)
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        _, pending = await asyncio.wait(keepers, timeout=STOP_TIMEOUT)
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.kill()
        await asyncio.gather(*pending, return_exceptions=True)
        self.smtp.close()
        clean = all(code == 0 for code in self.exit_codes.values()) and not pending
        return 0 if clean else 1
