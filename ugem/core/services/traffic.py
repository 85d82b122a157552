"""A connection's traffic of the last day or week, hour by hour, against what is usual then.

`TrafficService.traffic(conn_id, span)` answers, for a known connection
(`NotFoundError` otherwise, from `ConnectionService.get`), the recipients it
sent in each hour of the span ("day": the last 24 hours, "week": the last
168; the last one is the hour in progress) with the usual number for that
hour and its spread, as the anomaly detector learned them. The detector lives
in another floor, so the service asks a `TrafficSource` (the roof implements
it over the live detector: `ugem.adapters.traffic`). Its `status` says what
it could say: "off" (no source: the detector is off in this node), "unknown"
(the detector has not seen this connection yet) or "known"; an hour whose
usual is not learned yet has none (`usual` None). The hour in progress is
compared with the usual of the part of it that has passed. A span other
than "day" or "week" is a `UsageError` naming both. Nothing else raises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Protocol

from ugem.core.clock import Clock
from ugem.core.errors import UsageError
from ugem.core.services.connections import ConnectionService

SPANS: Final = {"day": 24, "week": 7 * 24}  # hours shown
SPREADS: Final = 2.0  # the usual band: the usual number give or take this many spreads


class TrafficSource(Protocol):
    def hourly(self, connection: str, first: int, n: int) -> list[int] | None:
        """Recipients of each of the `n` Unix hours from `first`; None: never seen."""
        ...

    def usual(self, connection: str, hour: int) -> tuple[float, float] | None:
        """(usual recipients, spread) of the whole Unix hour `hour`; None: not learned."""
        ...


class Status(StrEnum):
    OFF = "off"
    UNKNOWN = "unknown"
    KNOWN = "known"


@dataclass(frozen=True)
class HourCount:
    start: float  # Unix time the hour began
    count: int  # recipients accepted in it (so far, for the hour in progress)
    usual: float | None  # what is usual for it (its part that passed); None: not learned
    spread: float | None

    @property
    def band(self) -> tuple[float, float]:
        """The usual band: usual ± SPREADS spreads, at least 0; (0, 0) when not learned."""
        if self.usual is None or self.spread is None:
            return 0.0, 0.0
        return max(0.0, self.usual - SPREADS * self.spread), self.usual + SPREADS * self.spread


@dataclass(frozen=True)
class Traffic:
    connection: str
    span: str
    status: Status
    hours: tuple[HourCount, ...] = ()

    @property
    def total(self) -> int:
        return sum(h.count for h in self.hours)

    @property
    def learned(self) -> bool:
        """Whether any hour has a usual number."""
        return any(h.usual is not None for h in self.hours)


def span_hours(span: str) -> int:
    if span not in SPANS:
        raise UsageError(f"span: {span!r}; expected one of {', '.join(SPANS)}")
    return SPANS[span]


class TrafficService:
    def __init__(
        self, connections: ConnectionService, clock: Clock, source: TrafficSource | None
    ) -> None:
        self.connections = connections
        self.clock = clock
        self.source = source

    async def traffic(self, conn_id: str, span: str = "day") -> Traffic:
        n = span_hours(span)
        conn = await self.connections.get(conn_id)
        if self.source is None:
            return Traffic(conn.id, span, Status.OFF)
        now = self.clock.now()
        first = int(now // 3600) - n + 1
        counts = self.source.hourly(conn.id, first, n)
        if counts is None:
            return Traffic(conn.id, span, Status.UNKNOWN)
        hours = [self._hour(conn.id, first + i, count, now) for i, count in enumerate(counts)]
        return Traffic(conn.id, span, Status.KNOWN, tuple(hours))

    def _hour(self, conn_id: str, hour: int, count: int, now: float) -> HourCount:
        assert self.source is not None
        start = hour * 3600.0
        usual = self.source.usual(conn_id, hour)
        if usual is None:
            return HourCount(start, count, None, None)
        passed = min(1.0, max(0.0, (now - start) / 3600.0))  # < 1 only for the hour in progress
        mean, spread = usual
        return HourCount(start, count, mean * passed, spread * math.sqrt(passed))
