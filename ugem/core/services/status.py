"""One screen of a node: what `ugem status` prints and GET /v1/status answers.

`StatusService.status()` puts together the node's workers as they describe
themselves on disk (`ugem.core.runtime`: pid, uptime, listeners, readiness,
recent warnings and errors), the queue by state (every worker's spool, through
the `MailQueue` it is given), the connections by state and the open incidents
(the store). The CLI and the API call this one service. A part that cannot be
read does not stop the others: the store down gives `connections` and
`incidents` None and says so in `problems`, as does a spool that fails; the
workers' files never raise (`ugem.core.runtime.read_workers`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from ugem import __version__
from ugem.core.clock import Clock
from ugem.core.errors import SpoolError, StoreError
from ugem.core.queue_filter import MailFilter
from ugem.core.runtime import RecentEvent, WorkerState, read_workers
from ugem.core.services.incidents import IncidentService, IncidentState
from ugem.core.services.mailqueue import MailQueue
from ugem.core.store.base import Store

STATES: Final = ("active", "deferred", "held")
SHOWN_EVENTS: Final = 10  # recent warnings and errors shown, newest first, all workers
MAX_OPEN: Final = 1000  # open incidents counted at most (the answer says "1000+")


@dataclass(frozen=True)
class NodeStatus:
    version: str
    now: float
    workers: list[WorkerState]
    queue: dict[str, int] | None  # by state; None: a spool could not be read
    connections: dict[str, int] | None  # by state; None: the store could not be read
    open_incidents: int | None
    recent: list[RecentEvent] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def running(self) -> list[WorkerState]:
        return [w for w in self.workers if w.running]


class StatusService:
    def __init__(
        self,
        run_dir: Path,
        store: Store,
        queue: MailQueue,
        incidents: IncidentService,
        clock: Clock,
    ) -> None:
        self._run_dir, self._store, self._queue = run_dir, store, queue
        self._incidents, self._clock = incidents, clock

    async def status(self) -> NodeStatus:
        now = self._clock.now()
        found = read_workers(self._run_dir, time.time())  # the files' times are wall-clock
        problems = [f"{name}: unreadable" for name in found.unreadable]
        queue = await self._queue_counts(problems)
        connections, incidents = await self._store_counts(problems)
        recent = sorted((e for w in found.found for e in w.recent), key=lambda e: -e.ts)
        return NodeStatus(
            __version__,
            now,
            found.found,
            queue,
            connections,
            incidents,
            recent[:SHOWN_EVENTS],
            problems,
        )

    async def _queue_counts(self, problems: list[str]) -> dict[str, int] | None:
        try:
            return {state: await self._queue.count(MailFilter((state,))) for state in STATES}
        except SpoolError as exc:
            problems.append(f"queue: {exc}")
            return None

    async def _store_counts(self, problems: list[str]) -> tuple[dict[str, int] | None, int | None]:
        try:
            conns = await self._store.list()
            opened = await self._incidents.list(IncidentState.OPEN, limit=MAX_OPEN)
        except StoreError as exc:
            problems.append(f"store: {exc}")
            return None, None
        by_state: dict[str, int] = {}
        for conn in conns:
            by_state[conn.state.value] = by_state.get(conn.state.value, 0) + 1
        return by_state, len(opened)
