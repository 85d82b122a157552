"""The mail log's observer: the bus's events as mail log lines and message index rows.

`MailLogWriter` subscribes to the node's `EventBus` and, for each event about
mail (`ugem.core.maillog.entry_of`), writes its line at INFO on `ugem.maillog`
(unless `lines` is off) and keeps its entry for the message index
(`ugem.core.message_index`, when given). It takes the events its subscription
queued every TICK_S (one wake-up for all of them, not one per event), and
writes entries in batches (BATCH entries, or what came within FLUSH_S), each in
one transaction, on a thread of the writer's own, so the event loop never
waits on SQLite; the SMTP path costs one `EventBus.publish`. With `prune` (one
worker of a node), the index is pruned at start and then once a day by the
injected clock (history older than `days`), and shrunk to `max_bytes` after
each batch when it grew past it. `settle()` writes everything published so far
(stop does too). `writer_from_config` builds a node worker's writer from
`[log]` (None when both the lines and the index are off; worker 0 prunes).

Failures never reach the mail flow: an index that cannot be opened at start is
an ERROR line (`message_index_unavailable`) and the writer goes on without it;
a batch the index cannot take is dropped and counted
(`ugem_events_dropped_total{observer="maillog"}`, as are events the writer fell
behind on); the first failure of a run of them is logged at WARNING
(`message_index_failed`), the first success after them at INFO
(`message_index_recovered`, with the entries lost meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from ugem.core.clock import Clock
from ugem.core.config import MIB, Config
from ugem.core.events import Event, EventBus
from ugem.core.log import event
from ugem.core.maillog import Entry, emit, entry_of
from ugem.core.message_index import MessageIndex, index_path
from ugem.core.metrics import Metrics
from ugem.core.tasks import cancel_and_wait

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH = 1000  # entries written in one transaction at most
FLUSH_S = 1.0  # longest an entry waits to be written (seconds of the event loop)
TICK_S = 0.1  # how often the writer takes the events queued for it (and writes their lines)
DAY = 86400.0
OBSERVER = "maillog"


@dataclass(frozen=True)
class IndexSettings:
    """How to open the index and how long it keeps history (`[log] index_days`,
    `index_max_mb`)."""

    open_index: Callable[[], MessageIndex]
    days: int
    max_bytes: int


class MailLogWriter:
    def __init__(
        self,
        bus: EventBus,
        clock: Clock,
        metrics: Metrics,
        index: IndexSettings | None,
        *,
        lines: bool = True,
        prune: bool = True,
    ) -> None:
        self._bus = bus
        self._sub = bus.subscribe(OBSERVER)
        self._clock = clock
        self._metrics = metrics
        self._settings = index
        self._lines = lines
        self._prunes = prune
        self._index: MessageIndex | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="maillog-index")
        self._batch: list[Entry] = []
        self._lock = asyncio.Lock()
        self._next_prune = 0.0
        self._lost = 0  # entries dropped since the index last took a batch
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the index (one that cannot be opened is logged at ERROR, and the node runs
        without it: mail flows, the lines are written) and listen."""
        if self._settings is not None:
            try:
                self._index = await self._call(self._settings.open_index)
            except (sqlite3.Error, OSError) as exc:
                event(log, "message_index_unavailable", logging.ERROR, error=str(exc))
            await self._maintain()
        self._task = asyncio.create_task(self._run(), name="maillog")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        await self.settle()
        self._bus.unsubscribe(self._sub)
        if self._index is not None:
            await self._call(self._index.close)
            self._index = None
        self._thread.shutdown(wait=True)

    async def settle(self) -> None:
        """Take every event published so far and write it."""
        self._take_queued()
        await self.flush()

    async def _run(self) -> None:
        """Every TICK_S, take what the bus queued (one wake-up for all of it, whatever the
        rate of mail); write a batch when it is full or FLUSH_S old."""
        loop = asyncio.get_running_loop()
        since = loop.time()
        while True:
            await asyncio.sleep(TICK_S)
            self._take_queued()
            if len(self._batch) >= BATCH or loop.time() - since >= FLUSH_S:
                await self.flush()
                since = loop.time()

    def _take_queued(self) -> None:
        while not self._sub.queue.empty():
            self._take(self._sub.queue.get_nowait())
        if self._sub.dropped:
            self._metrics.events_dropped.labels(OBSERVER).inc(self._sub.dropped)
            self._sub.dropped = 0

    def _take(self, ev: Event) -> None:
        entry = entry_of(ev)
        if entry is None:
            return
        if self._lines:
            emit(entry)
        if self._index is not None:
            self._batch.append(entry)

    async def flush(self) -> None:
        """Write the entries taken so far (BATCH at a time); prune when a day has passed."""
        async with self._lock:
            index = self._index
            while index is not None and self._batch:
                batch, self._batch = self._batch[:BATCH], self._batch[BATCH:]
                await self._write(index, batch)
            await self._maintain()

    async def _write(self, index: MessageIndex, batch: list[Entry]) -> None:
        try:
            await self._call(index.write, batch)
        except (sqlite3.Error, OSError) as exc:
            self._metrics.events_dropped.labels(OBSERVER).inc(len(batch))
            if not self._lost:
                event(log, "message_index_failed", logging.WARNING, error=str(exc))
            self._lost += len(batch)
            return
        if self._lost:
            event(log, "message_index_recovered", logging.INFO, lost=self._lost)
            self._lost = 0

    async def _maintain(self) -> None:
        """Prune once a day (by the node's clock) and keep the file under its size."""
        index, settings = self._index, self._settings
        if index is None or settings is None or not self._prunes:
            return
        now = self._clock.now()
        try:
            if now >= self._next_prune:
                self._next_prune = now + DAY
                pruned = await self._call(index.prune, now - settings.days * DAY)
                if pruned:
                    event(log, "message_index_pruned", logging.INFO, messages=pruned)
            shrunk = await self._call(index.shrink, settings.max_bytes)
            if shrunk:
                event(log, "message_index_shrunk", logging.INFO, messages=shrunk)
        except (sqlite3.Error, OSError) as exc:
            event(log, "message_index_prune_failed", logging.WARNING, error=str(exc))

    async def _call(self, work: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work, *args)


def index_settings(config: Config) -> IndexSettings | None:
    """The message index of `config`'s node; None when `[log] index_days` is 0."""
    days = config.log.index_days
    if days <= 0:
        return None
    path = index_path(config.data_path)
    return IndexSettings(lambda: MessageIndex(path), days, config.log.index_max_mb * MIB)


def writer_from_config(
    config: Config, bus: EventBus, clock: Clock, metrics: Metrics, worker: int
) -> MailLogWriter | None:
    """Worker `worker`'s mail log writer (None when `[log]` turns off lines and index)."""
    index, lines = index_settings(config), config.log.mail_log == "on"
    if index is None and not lines:
        return None
    return MailLogWriter(bus, clock, metrics, index, lines=lines, prune=worker == 0)
