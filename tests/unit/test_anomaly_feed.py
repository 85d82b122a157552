"""The detector's feeds: its own bus, or every worker's events through the shared log.

Two buses stand for two workers (or nodes) on one store: each worker's
detector must see both workers' traffic of a connection, in one order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from anomaly.feed import LocalFeed, SharedFeed
from ugem.core.clock import FakeClock
from ugem.core.errors import StoreError
from ugem.core.events import Accepted, Event, EventBus, Outcome
from ugem.core.metrics import Metrics
from ugem.core.store.traffic import TrafficLog, open_traffic_log

WAIT = 10.0  # seconds a feed may take to show what was published (polling, not time passing)


def accepted(ts: float, conn: str, sender: str) -> Accepted:
    return Accepted(ts, "Q1", conn, "127.0.0.2", sender, ("a@x.example",), 100)


class Worker:
    def __init__(self, store_url: str) -> None:
        self.bus, self.metrics = EventBus(), Metrics()
        self.log: TrafficLog = open_traffic_log(store_url, FakeClock())
        self.feed = SharedFeed(self.bus, self.log, self.metrics)

    async def take(self, n: int) -> list[Event]:
        return [await asyncio.wait_for(self.feed.get(), WAIT) for _ in range(n)]


@pytest.fixture
async def workers(store_url: str) -> AsyncIterator[tuple[Worker, Worker]]:
    pair = (Worker(store_url), Worker(store_url))
    for w in pair:
        await w.feed.start()
    yield pair
    for w in pair:
        await w.feed.stop()
        await w.log.close()


async def test_each_worker_sees_every_workers_traffic_in_one_order(
    workers: tuple[Worker, Worker],
) -> None:
    a, b = workers
    a.bus.publish(accepted(10.0, "c1", "one@c1.example"))
    first = await a.take(1)
    b.bus.publish(accepted(11.0, "c1", "two@c1.example"))
    b.bus.publish(Outcome(12.0, "bounced", "Q1", "c1", "127.0.0.2", "a@x.example", 550))
    rest_a = await a.take(2)
    seen_b = await b.take(3)
    assert first + rest_a == seen_b
    assert [type(e).__name__ for e in seen_b] == ["Accepted", "Accepted", "Outcome"]
    assert [e.sender for e in seen_b if isinstance(e, Accepted)] == [
        "one@c1.example",
        "two@c1.example",
    ]
    assert isinstance(seen_b[2], Outcome) and seen_b[2].code == 550


async def test_inbound_mail_is_not_shared(workers: tuple[Worker, Worker]) -> None:
    a, b = workers
    a.bus.publish(accepted(10.0, "", "someone@internet.example"))  # not a connected server
    a.bus.publish(accepted(11.0, "c1", "x@c1.example"))
    (only,) = await b.take(1)
    assert isinstance(only, Accepted) and only.connection == "c1"


async def test_event_time_never_runs_backwards_for_a_connection(
    workers: tuple[Worker, Worker],
) -> None:
    a, b = workers
    a.bus.publish(accepted(100.0, "c1", "x@c1.example"))
    await b.take(1)
    b.bus.publish(accepted(99.5, "c1", "y@c1.example"))  # the other node's clock is behind
    b.bus.publish(accepted(50.0, "c2", "z@c2.example"))  # another connection keeps its own time
    late, other = await b.take(2)
    assert late.ts == 100.0
    assert other.ts == 50.0


async def test_a_failed_append_is_judged_here_alone_and_counted_as_not_shared(
    tmp_path: Path,
) -> None:
    w = Worker(f"sqlite:///{tmp_path / 'registry.db'}")
    await w.feed.start()
    await w.log.close()  # every append (and read) fails from now on
    try:
        w.bus.publish(accepted(1.0, "c1", "x@c1.example"))
        w.bus.publish(accepted(0.5, "c1", "y@c1.example"))  # in order per connection here too
        begun = asyncio.get_running_loop().time()
        judged = await w.take(2)
        assert [(e.ts, e.sender) for e in judged if isinstance(e, Accepted)] == [
            (1.0, "x@c1.example"),
            (1.0, "y@c1.example"),
        ]
        assert asyncio.get_running_loop().time() - begun < 0.9  # not a failed read's pause

        def dropped() -> float | None:
            name, labels = "ugem_events_dropped_total", {"observer": "traffic-log"}
            return w.metrics.registry.get_sample_value(name, labels)

        for _ in range(1000):
            if dropped():
                break
            await asyncio.sleep(0.01)  # the publisher task runs; no clock time is involved
        assert dropped() == 2
    finally:
        await w.feed.stop()


async def test_an_outage_of_the_traffic_log_is_told_once_not_per_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="anomaly.feed")
    w = Worker(f"sqlite:///{tmp_path / 'registry.db'}")
    await w.feed.start()
    append, down = w.log.append, True

    async def flaky(lines: list[str]) -> None:
        if down:
            raise StoreError("redis store x: Connection refused")
        await append(lines)

    def appends() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage().startswith("traffic_append")]

    monkeypatch.setattr(w.log, "append", flaky)
    try:
        for number in range(5):  # one batch each: the publisher takes what it finds
            w.bus.publish(accepted(1.0 + number, "c1", "x@c1.example"))
            await _until_told(appends, number + 1)
        down = False
        w.bus.publish(accepted(9.0, "c1", "x@c1.example"))
        await _until_told(appends, 6)
    finally:
        await w.feed.stop()
        await w.log.close()
    told = [(r.levelno, r.getMessage()) for r in appends()]
    assert told == [(logging.WARNING, "traffic_append_failed")] + [
        (logging.DEBUG, "traffic_append_failed")
    ] * 4 + [(logging.INFO, "traffic_append_recovered")]
    assert getattr(appends()[-1], "fields", {})["dropped"] == 5


async def _until_told(told: Callable[[], list[logging.LogRecord]], count: int) -> None:
    for _ in range(1000):
        if len(told()) == count:
            return
        await asyncio.sleep(0.01)  # the publisher task runs; no clock time is involved
    raise AssertionError("the publisher did not get there")


async def test_the_local_feed_is_this_process_alone() -> None:
    bus, metrics = EventBus(), Metrics()
    feed = LocalFeed(bus, metrics)
    await feed.start()
    try:
        ev = accepted(1.0, "c1", "x@c1.example")
        bus.publish(ev)
        assert await asyncio.wait_for(feed.get(), WAIT) == ev
        assert await feed.claim("anything", 1) and await feed.claim("anything", 1)
    finally:
        await feed.stop()


async def test_a_shared_feed_on_redis_always_stops(redis_url: str) -> None:
    """redis-py may swallow the cancellation of an XREAD BLOCK (about 2 % of stops);
    the reader must stop anyway, or the node's shutdown hangs."""
    bus, metrics = EventBus(), Metrics()
    log = open_traffic_log(redis_url)
    try:
        for attempt in range(200):
            feed = SharedFeed(bus, log, metrics)
            await feed.start()
            reader = asyncio.create_task(feed.get())
            for _ in range(attempt % 7):
                await asyncio.sleep(0)  # cancel at different points of the read
            await asyncio.sleep(0.001 * (attempt % 5))
            reader.cancel()
            done, _ = await asyncio.wait({reader}, timeout=WAIT)
            assert done, f"the reader did not stop (stop {attempt})"
            await feed.stop()
    finally:
        await log.close()
