"""The detector's view of the traffic: this process's events, or every node's.

`LocalFeed` reads the node's own `EventBus`: right for one node with one
worker. `SharedFeed` makes several workers and nodes judge a connection by its
whole traffic: a publisher task drains this process's bus in batches and
appends the connected servers' events, as trace records, to the shared
`TrafficLog` (`ugem.core.store.traffic`: one round trip or transaction a batch, so
never more than one a message); `get()` then reads every process's events
from the log, in the log's one order, so every detector sees the same stream
and reaches the same verdicts. Event time is kept non-decreasing per
connection (clock skew between nodes must not run a window backwards).
`claim(key, ttl)` picks the one process that acts on a verdict they all reach.

Both count the events they lose in `ugem_events_dropped_total{observer=...}`
("anomaly" for the bus, "traffic-log" for a failed append). The SMTP path never
waits on either: the bus never blocks, and a failed append or read is
retried (reads) or dropped (appends); the detector only falls behind. The
log says so once per outage, not once per batch: the first failure of
appends (or of reads) is a WARNING (`traffic_append_failed`,
`traffic_read_failed`), the ones that follow DEBUG, and the first success
after them an INFO (`traffic_append_recovered` with the events dropped
meanwhile, `traffic_read_recovered`).

While appends fail (the store is down), the events this process could not
share are judged here alone: they go straight to this process's detector
(still in order per connection), so a connection turning abnormal during an
outage is caught by the node it sends through; the other processes never see
them ("dropped" counts them as not shared).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections import deque
from typing import Final, Protocol

from ugem.core.errors import StoreError
from ugem.core.events import Event, EventBus, Subscription, event_of_record, trace_record
from ugem.core.log import event
from ugem.core.metrics import Metrics
from ugem.core.store.traffic import TrafficLog
from ugem.core.tasks import cancel_and_wait, raise_if_cancelled

log = logging.getLogger(__name__)

BATCH: Final = 500  # events appended or read at a time
RETRY_S: Final = 1.0  # pause after a failed read
READ_WAIT_S: Final = 0.1  # longest a read waits for new records


class Feed(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def get(self) -> Event: ...

    async def claim(self, key: str, ttl: float) -> bool: ...


class LocalFeed:
    """This process's own events, from its bus."""

    def __init__(self, bus: EventBus, metrics: Metrics) -> None:
        self._bus, self._metrics = bus, metrics
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = self._bus.subscribe("anomaly")

    async def stop(self) -> None:
        if self._sub is not None:
            self._bus.unsubscribe(self._sub)
            self._sub = None

    async def get(self) -> Event:
        assert self._sub is not None, "start() first"
        ev = await self._sub.get()
        if self._sub.dropped:
            self._metrics.events_dropped.labels("anomaly").inc(self._sub.dropped)
            self._sub.dropped = 0
        return ev

    def drain_one(self) -> Event | None:
        """An event already waiting, without waiting; None when there is none."""
        assert self._sub is not None, "start() first"
        try:
            return self._sub.queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    async def claim(self, key: str, ttl: float) -> bool:
        return True  # nobody else acts


class SharedFeed:
    """Every process's events, through the shared traffic log."""

    def __init__(self, bus: EventBus, traffic: TrafficLog, metrics: Metrics) -> None:
        self._local = LocalFeed(bus, metrics)
        self._traffic, self._metrics = traffic, metrics
        self._cursor = ""
        self._ready: deque[Event] = deque()
        self._last_ts: dict[str, float] = {}
        self._publisher: asyncio.Task[None] | None = None
        self._append_dropped: int | None = None  # events dropped in this outage; None: up
        self._read_down = False
        self._arrived = asyncio.Event()  # events judged here alone are ready

    async def start(self) -> None:
        self._cursor = await self._traffic.tail()  # judge what comes from now on
        await self._local.start()
        self._publisher = asyncio.create_task(self._publish(), name="traffic-publisher")

    async def stop(self) -> None:
        if self._publisher is not None:
            await cancel_and_wait(self._publisher)
            self._publisher = None
        await self._local.stop()

    async def _publish(self) -> None:
        while True:
            records = [await self._local.get()]
            while len(records) < BATCH and (more := self._local.drain_one()) is not None:
                records.append(more)
            traced = [(ev, r) for ev in records if (r := trace_record(ev)) is not None]
            if traced:
                await self._append([json.dumps(r) for _, r in traced], [ev for ev, _ in traced])
                raise_if_cancelled()

    async def _append(self, lines: list[str], events: list[Event]) -> None:
        try:
            await self._traffic.append(lines)
        except StoreError as exc:
            self._judge_here(events)
            self._metrics.events_dropped.labels("traffic-log").inc(len(lines))
            first = self._append_dropped is None
            self._append_dropped = (self._append_dropped or 0) + len(lines)
            level = logging.WARNING if first else logging.DEBUG
            event(log, "traffic_append_failed", level, dropped=len(lines), error=str(exc))
            return
        if self._append_dropped is not None:
            event(log, "traffic_append_recovered", dropped=self._append_dropped)
            self._append_dropped = None

    def _judge_here(self, events: list[Event]) -> None:
        """Events the log could not take: to this process's detector alone."""
        for ev in events:
            self._ready.append(self._in_order(ev))
        self._arrived.set()

    async def get(self) -> Event:
        while not self._ready:
            await self._fill()
            raise_if_cancelled()
        return self._ready.popleft()

    async def _pause(self) -> None:
        """Wait `RETRY_S` after a failed read, or less if events to judge here come."""
        self._arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._arrived.wait(), RETRY_S)

    async def _fill(self) -> None:
        try:
            cursor, lines = await self._traffic.read(self._cursor, BATCH, READ_WAIT_S)
        except StoreError as exc:
            level = logging.DEBUG if self._read_down else logging.WARNING
            self._read_down = True
            event(log, "traffic_read_failed", level, error=str(exc))
            if not self._ready:
                await self._pause()
            return
        if self._read_down:
            self._read_down = False
            event(log, "traffic_read_recovered")
        self._cursor = cursor
        for line in lines:
            ev = self._decode(line)
            if ev is not None:
                self._ready.append(ev)

    def _decode(self, line: str) -> Event | None:
        try:
            ev = event_of_record(json.loads(line))
        except (KeyError, TypeError, ValueError) as exc:
            event(log, "traffic_record_bad", logging.WARNING, error=str(exc))
            return None
        return self._in_order(ev)

    def _in_order(self, ev: Event) -> Event:
        """`ev` with its time no earlier than its connection's last event's here."""
        last = self._last_ts.get(ev.connection, ev.ts)
        if ev.ts < last:
            ev = dataclasses.replace(ev, ts=last)
        self._last_ts[ev.connection] = ev.ts
        return ev

    async def claim(self, key: str, ttl: float) -> bool:
        return await self._traffic.claim(key, ttl)
