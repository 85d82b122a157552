"""Per-connection counts of delivery replies and complaints over the last hours, bounded.

`ReplyTally(window)` answers "what did each connection's mail meet in the
last `window` seconds": its delivery attempts (one per recipient and attempt:
every `Outcome` of the bus), the replies refusing it by class (`REJECTIONS`:
blocklisted, spam content, policy, unknown user, as `ugem.core.reply_class`
read them) and the feedback-loop complaints traced to it (`Complained`).
`observe(event)` counts one event of the bus (anything else, and inbound
mail, which has no connection, is ignored); `counts(now)` sums the window
that ends at `now`. The gateway's incidents rank the connections by it
(`ugem.core.services.gateway`).

Time is the events' own (the node's injected clock), cut into `BUCKETS`
buckets of `window / BUCKETS` seconds: the window is counted to within one
bucket, and an event older than the oldest bucket still held is not counted.
Memory is bounded: at most `max_connections` connections, each a ring of
`BUCKETS` slots of a few integers, so connections x buckets whatever the
traffic; a connection with nothing in the window is forgotten (checked once
a bucket), and an event of a connection beyond the bound is not counted
(`untallied` says how many). Nothing here raises or does I/O; it lives in
one process's memory (a worker counts the mail it delivered itself) and a
restart begins with nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from ugem.core.events import Complained, Event, Outcome
from ugem.core.reply_class import BLOCKLISTED, POLICY, SPAM_CONTENT, UNKNOWN_USER

REJECTIONS: Final = (BLOCKLISTED, SPAM_CONTENT, POLICY, UNKNOWN_USER)  # what ranks a connection
BUCKETS: Final = 36  # a window's buckets: 10 minutes each of the default 6 hours
MAX_CONNECTIONS: Final = 50_000  # connections tallied at once

_BUCKET, _ATTEMPTS, _COMPLAINTS = 0, 1, 2  # a slot: [bucket number, attempts, complaints, ...]
_COLUMN: Final = {cls: 3 + i for i, cls in enumerate(REJECTIONS)}  # ... and one per rejection
_WIDTH: Final = 3 + len(REJECTIONS)


@dataclass(frozen=True)
class Counts:
    """One connection's window: attempts, complaints, rejections by class (all of REJECTIONS)."""

    attempts: int = 0
    complaints: int = 0
    rejections: Mapping[str, int] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return sum(self.rejections.values())


class ReplyTally:
    def __init__(
        self, window: float, buckets: int = BUCKETS, max_connections: int = MAX_CONNECTIONS
    ) -> None:
        if window <= 0 or buckets < 1 or max_connections < 1:
            raise ValueError("a tally needs a window, buckets and room for a connection")
        self.window = window
        self.buckets = buckets
        self.width = window / buckets  # seconds a bucket
        self.max_connections = max_connections
        self.untallied = 0  # events of connections beyond max_connections
        self._rings: dict[str, list[list[int]]] = {}
        self._last: dict[str, int] = {}  # a connection's newest bucket
        self._newest = -1  # the newest bucket seen
        self._swept = -1  # the newest bucket at the last sweep

    def __len__(self) -> int:
        return len(self._rings)

    def observe(self, event: Event) -> None:
        """Count `event` if it is a connection's delivery outcome or complaint."""
        if isinstance(event, Outcome) and event.connection:
            column = _COLUMN.get(event.reply_class)
            self._count(event.connection, event.ts, _ATTEMPTS, column)
        elif isinstance(event, Complained) and event.connection:
            self._count(event.connection, event.ts, _COMPLAINTS, None)

    def counts(self, now: float) -> dict[str, Counts]:
        """Each connection's counts in the window that ends at `now` (none: not there)."""
        current = self._bucket(now)
        found: dict[str, Counts] = {}
        for conn, ring in self._rings.items():
            slots = [s for s in ring if current - self.buckets < s[_BUCKET] <= current]
            if slots:
                found[conn] = _summed(slots)
        return found

    def _bucket(self, ts: float) -> int:
        return math.floor(ts / self.width) if math.isfinite(ts) else -1

    def _count(self, conn: str, ts: float, column: int, extra: int | None) -> None:
        number = self._bucket(ts)
        if number < 0:
            return
        if number > self._newest:
            self._newest = number
            self._sweep()
        if number <= self._newest - self.buckets:
            return  # older than the window held
        slot = self._slot(conn, number)
        if slot is None:
            return
        slot[column] += 1
        if extra is not None:
            slot[extra] += 1

    def _slot(self, conn: str, number: int) -> list[int] | None:
        """The slot of `conn` for bucket `number`, emptied if it held an older bucket; None
        when the connection cannot be tallied or the slot moved on to a newer bucket."""
        ring = self._rings.get(conn)
        if ring is None:
            if len(self._rings) >= self.max_connections:
                self.untallied += 1
                return None
            ring = self._rings[conn] = [[-1] + [0] * (_WIDTH - 1) for _ in range(self.buckets)]
        slot = ring[number % self.buckets]
        if slot[_BUCKET] > number:
            return None
        if slot[_BUCKET] < number:
            slot[:] = [number] + [0] * (_WIDTH - 1)
        self._last[conn] = max(self._last.get(conn, -1), number)
        return slot

    def _sweep(self) -> None:
        """Forget the connections with nothing in the window (once a bucket at most)."""
        if self._newest <= self._swept:
            return
        self._swept = self._newest
        oldest = self._newest - self.buckets
        for conn in [c for c, last in self._last.items() if last <= oldest]:
            del self._rings[conn], self._last[conn]


def _summed(slots: list[list[int]]) -> Counts:
    rejections = {cls: sum(s[col] for s in slots) for cls, col in _COLUMN.items()}
    return Counts(sum(s[_ATTEMPTS] for s in slots), sum(s[_COMPLAINTS] for s in slots), rejections)
