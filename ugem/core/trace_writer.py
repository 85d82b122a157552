"""The trace writer: relay events as a JSONL traffic trace for the anomaly detector.

Subscribes to the event bus and appends one line per event in the format of
../shared/anomaly/TRACE-FORMAT.md (only connected servers' traffic). Lines
are buffered and flushed at least once a second and at stop, so the SMTP path
never waits on this file. A write error is logged once and the writer stops;
it never affects mail flow. Events dropped because the writer fell behind are
counted in `ugem_events_dropped_total{observer="trace"}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import IO

from ugem.core.events import Event, EventBus, trace_record
from ugem.core.log import event
from ugem.core.metrics import Metrics
from ugem.core.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class TraceWriter:
    def __init__(self, path: Path, bus: EventBus, metrics: Metrics) -> None:
        self.path = path
        self._sub = bus.subscribe("trace")
        self._bus = bus
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None
        self._file: IO[str] | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._task = asyncio.create_task(self._run(), name="trace-writer")

    async def _run(self) -> None:
        assert self._file is not None
        try:
            while True:
                try:
                    ev = await asyncio.wait_for(self._sub.get(), timeout=1.0)
                except TimeoutError:
                    self._file.flush()
                    continue
                self._write(ev)
                while not self._sub.queue.empty():
                    self._write(self._sub.queue.get_nowait())
                self._report_drops()
        except OSError as exc:
            event(log, "trace_write_failed", logging.ERROR, path=str(self.path), error=str(exc))

    def _write(self, ev: Event) -> None:
        assert self._file is not None
        record = trace_record(ev)
        if record is not None:
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")

    def _report_drops(self) -> None:
        if self._sub.dropped:
            self._metrics.events_dropped.labels("trace").inc(self._sub.dropped)
            self._sub.dropped = 0

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        if self._file is not None:
            while not self._sub.queue.empty():
                self._write(self._sub.queue.get_nowait())
            self._file.close()
            self._file = None
        self._bus.unsubscribe(self._sub)
