"""Recipients accepted per connection per hour, over the last week, in bounded memory.

`TrafficHistory` is what a connection's traffic chart draws: `add(connection,
ts, rcpts)` counts one accepted message in the hour of `ts` (Unix hours, so
an hour is the same in every zone but those off by half an hour, which
Kazakhstan is not); `hourly(connection, first, n)` gives the counts of the
`n` hours from the Unix hour `first`, zeros where nothing came, or None for a
connection never counted. Only the last `hours` hours before a connection's
newest one are kept (a ring per connection: two arrays of `hours` integers),
so an event older than that is not counted. At most `max_connections`
connections are kept: when full, those silent for longer than the ring are
forgotten, and past that a new connection is not counted (`untracked` says
how many events were not). Pure memory; nothing here raises or does I/O.
"""

from __future__ import annotations

from array import array
from typing import Final

HOURS: Final = 7 * 24  # a week
MAX_CONNECTIONS: Final = 20_000
_MAX_COUNT: Final = 2**32 - 1  # an array("I") slot


class _Ring:
    __slots__ = ("counts", "hours", "newest")

    def __init__(self, size: int) -> None:
        self.counts = array("I", bytes(4 * size))
        self.hours = array("q", [-1]) * size
        self.newest = -1


class TrafficHistory:
    def __init__(self, hours: int = HOURS, max_connections: int = MAX_CONNECTIONS) -> None:
        if hours < 1 or max_connections < 1:
            raise ValueError("hours and max_connections must be at least 1")
        self.size = hours
        self.max_connections = max_connections
        self.untracked = 0
        self._rings: dict[str, _Ring] = {}

    def add(self, connection: str, ts: float, rcpts: int) -> None:
        """Count `rcpts` recipients of `connection` accepted at `ts`."""
        ring = self._rings.get(connection) or self._open(connection, int(ts // 3600))
        if ring is None:
            self.untracked += 1
            return
        hour = int(ts // 3600)
        if hour <= ring.newest - self.size:
            return  # older than the ring
        slot = hour % self.size
        if ring.hours[slot] != hour:
            if ring.hours[slot] > hour:
                return
            ring.hours[slot], ring.counts[slot] = hour, 0
        ring.counts[slot] = min(_MAX_COUNT, ring.counts[slot] + max(0, rcpts))
        ring.newest = max(ring.newest, hour)

    def hourly(self, connection: str, first: int, n: int) -> list[int] | None:
        """Counts of the hours `first` .. `first + n - 1` (Unix hours); None: never counted."""
        ring = self._rings.get(connection)
        if ring is None:
            return None
        size, hours, counts = self.size, ring.hours, ring.counts
        return [counts[h % size] if hours[h % size] == h else 0 for h in range(first, first + n)]

    def _open(self, connection: str, hour: int) -> _Ring | None:
        if len(self._rings) >= self.max_connections:
            self._forget_silent(hour)
            if len(self._rings) >= self.max_connections:
                return None
        ring = self._rings[connection] = _Ring(self.size)
        return ring

    def _forget_silent(self, hour: int) -> None:
        silent = [c for c, ring in self._rings.items() if ring.newest <= hour - self.size]
        for connection in silent:
            del self._rings[connection]
