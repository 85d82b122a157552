"""A node worker's own status file: the writing side of `ugem.core.runtime`.

`StatusFile(node, run_dir)` keeps the worker's `<data_dir>/run/worker-<i>.json`
up to date: `start()` puts a `RecentEvents` handler on the root logger (so
the file carries the worker's last warnings and errors) and writes the file
once; the node calls `write()` every `ugem.core.runtime.INTERVAL` seconds;
`stop()` removes the file and the handler. The readiness written is the one
`/readyz` answers (`admin.health.readiness_body`'s words: ready, degraded,
not ready). A write that fails is logged once per failure streak at WARNING
(`status_file_not_written`) and tried again at the next interval: the node
serves mail whether or not `ugem status` can see it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Protocol

from ugem import __version__
from ugem.core.log import event
from ugem.core.registry_watch import StoreStatus
from ugem.core.runtime import RecentEvents, WorkerState, remove_worker, write_worker
from ugem.reload import ReloadResult

log = logging.getLogger(__name__)


class Described(Protocol):
    """What the file says of a worker (a `ugem.node.Node`)."""

    worker: int

    def readiness(self) -> tuple[bool, str]: ...

    def store_status(self) -> StoreStatus | None: ...

    def addresses(self) -> tuple[str, str]:
        """(SMTP, admin) host:port as bound; "" for one not listening."""
        ...

    @property
    def last_reload(self) -> ReloadResult | None: ...


class StatusFile:
    def __init__(self, node: Described, run_dir: Path) -> None:
        self._node, self._run_dir = node, run_dir
        self._recent = RecentEvents()
        self._started_at = time.time()
        self._failing = False

    async def start(self) -> None:
        logging.getLogger().addHandler(self._recent)
        await self.write()

    async def write(self) -> None:
        try:
            write_worker(self._run_dir, self._state())
        except OSError as exc:
            if not self._failing:
                event(log, "status_file_not_written", logging.WARNING, error=str(exc))
            self._failing = True
            return
        self._failing = False

    def stop(self) -> None:
        logging.getLogger().removeHandler(self._recent)
        try:
            remove_worker(self._run_dir, self._node.worker)
        except OSError as exc:
            event(log, "status_file_not_removed", logging.WARNING, error=str(exc))

    def _state(self) -> WorkerState:
        ready, reason = self._node.readiness()
        store = self._node.store_status()
        degraded = ready and store is not None and store.degraded
        smtp, admin = self._node.addresses()
        return WorkerState(
            worker=self._node.worker,
            pid=os.getpid(),
            version=__version__,
            started_at=self._started_at,
            written_at=time.time(),
            smtp=smtp,
            admin=admin,
            status="not ready" if not ready else "degraded" if degraded else "ready",
            reason=reason,
            recent=self._recent.events(),
            reload=None if self._node.last_reload is None else self._node.last_reload.as_dict(),
        )
