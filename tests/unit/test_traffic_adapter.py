"""The traffic service's source in a node: the counts of what the detector is fed, its usual."""

from __future__ import annotations

import math

from anomaly.baseline import BLOCK_S
from anomaly.detector import Detector
from ugem.adapters.traffic import CountingFeed, DetectorTraffic
from ugem.core.events import Accepted, Event, Outcome
from ugem.core.traffic_history import TrafficHistory

START = 1_767_225_600.0  # an hour's start
CONN = "a.gov.kz"


class ListFeed:
    """A feed of the events given, in order (a detector's `anomaly.feed.Feed`)."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.claimed: list[str] = []

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def get(self) -> Event:
        return self.events.pop(0)

    async def claim(self, key: str, ttl: float) -> bool:
        self.claimed.append(key)
        return True


def accepted(ts: float, rcpts: int, connection: str = CONN) -> Accepted:
    names = tuple(f"r{i}@example.org" for i in range(rcpts))
    return Accepted(ts, "Q1", connection, "192.0.2.10", "a@a.gov.kz", names, 100)


def fed(detector: Detector, ev: Accepted) -> None:
    detector.accepted(ev.ts, ev.connection, ev.sender, list(ev.rcpts), ev.ip, ev.size)


async def test_the_feed_counts_each_accepted_message_it_hands_on() -> None:
    outcome = Outcome(START + 2, "delivered", "Q1", CONN, "192.0.2.10", "r0@example.org", 250)
    inbound = accepted(START + 3, 5, connection="")  # mail from the internet: no connection
    history = TrafficHistory()
    feed = CountingFeed(ListFeed([accepted(START + 1, 3), outcome, inbound]), history)
    await feed.start()
    got = [await feed.get() for _ in range(3)]
    assert got[1] is outcome and await feed.claim("k", 1.0)
    assert history.hourly(CONN, int(START // 3600), 1) == [3]
    await feed.stop()


def test_the_usual_is_the_detectors_learned_baseline_for_the_hour() -> None:
    detector, history = Detector(keep_counting=True), TrafficHistory()
    source = DetectorTraffic(detector, history)
    first = int(START // 3600)
    assert source.usual(CONN, first) is None and source.hourly(CONN, first, 1) is None
    for block in range(8 * 12):  # 8 hours: 4 recipients every 5 minutes
        ev = accepted(START + block * BLOCK_S, 4)
        fed(detector, ev)
        history.add(ev.connection, ev.ts, len(ev.rcpts))
    assert source.hourly(CONN, first, 9) == [48] * 8 + [0]
    usual = source.usual(CONN, first + 7)
    assert usual is not None
    traffic = detector.traffic(CONN)
    assert traffic is not None
    mean, spread, warm = traffic[1].expected((first + 7) * 3600.0)
    assert warm and usual == (mean * 12, spread * math.sqrt(12))
    assert usual[0] == 48.0  # the same 4 a block, every block: 48 an hour, no spread


def test_a_cold_baseline_gives_no_usual() -> None:
    detector = Detector(keep_counting=True)
    fed(detector, accepted(START, 2))
    assert DetectorTraffic(detector, TrafficHistory()).usual(CONN, int(START // 3600)) is None
