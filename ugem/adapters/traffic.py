"""A connection's traffic as the live detector sees it, for the operators' traffic service.

`CountingFeed(feed, history)` is the detector's feed (`anomaly.feed.Feed`)
with a tally on the way: every accepted message it hands on is counted in
`history` (`ugem.core.traffic_history`), so the counts are exactly the
events the detector judges (this worker's, or every worker's and node's with
a shared feed). `DetectorTraffic(detector, history)` implements
`ugem.core.services.traffic.TrafficSource`: the counts from `history`, and
an hour's usual from the detector's learned baseline (`Baseline.expected`,
per 5-minute block: an hour is 12 blocks, their spreads taken as independent,
so √12 times a block's spread); an hour the baseline has not learned yet (not
warm), or a connection the detector has not seen, has no usual. Nothing
here raises.
"""

from __future__ import annotations

import math

from anomaly.baseline import BLOCK_S
from anomaly.detector import Detector
from anomaly.feed import Feed
from ugem.core.events import Accepted, Event
from ugem.core.traffic_history import TrafficHistory

BLOCKS = 3600.0 / BLOCK_S  # the baseline's blocks in an hour


class CountingFeed:
    def __init__(self, feed: Feed, history: TrafficHistory) -> None:
        self.feed = feed
        self.history = history

    async def start(self) -> None:
        await self.feed.start()

    async def stop(self) -> None:
        await self.feed.stop()

    async def get(self) -> Event:
        ev = await self.feed.get()
        if isinstance(ev, Accepted) and ev.connection:
            self.history.add(ev.connection, ev.ts, len(ev.rcpts))
        return ev

    async def claim(self, key: str, ttl: float) -> bool:
        return await self.feed.claim(key, ttl)


class DetectorTraffic:
    def __init__(self, detector: Detector, history: TrafficHistory) -> None:
        self.detector = detector
        self.history = history

    def hourly(self, connection: str, first: int, n: int) -> list[int] | None:
        return self.history.hourly(connection, first, n)

    def usual(self, connection: str, hour: int) -> tuple[float, float] | None:
        traffic = self.detector.traffic(connection)
        if traffic is None:
            return None
        mean, spread, warm = traffic[1].expected(hour * 3600.0)
        return (mean * BLOCKS, spread * math.sqrt(BLOCKS)) if warm else None
