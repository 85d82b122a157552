"""The shared traffic log's contract, on SQLite and on a real Redis.

Two log objects on one file or server stand for two workers or nodes: what
one appends, the other reads, in one order; a claim is won once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from ugem.core.clock import FakeClock
from ugem.core.errors import StoreError
from ugem.core.store.traffic import MARK_S, START, SqliteTrafficLog, TrafficLog, open_traffic_log

LogFactory = Callable[[], TrafficLog]


@pytest.fixture
async def logs(store_url: str) -> AsyncIterator[LogFactory]:
    opened: list[TrafficLog] = []
    clock = FakeClock()

    def make() -> TrafficLog:
        opened.append(open_traffic_log(store_url, clock))
        return opened[-1]

    yield make
    for log in opened:
        await log.close()


async def test_what_one_appends_another_reads_in_order(logs: LogFactory) -> None:
    a, b = logs(), logs()
    await a.append(["1", "2"])
    await b.append(["3"])
    await a.append(["4"])
    cursor, seen = await b.read(START, wait=0)
    assert seen == ["1", "2", "3", "4"]
    assert await b.read(cursor, wait=0) == (cursor, [])
    await a.append(["5"])
    assert (await b.read(cursor, wait=0))[1] == ["5"]


async def test_a_reader_from_the_tail_sees_only_what_comes_next(logs: LogFactory) -> None:
    a, b = logs(), logs()
    await a.append(["old-1", "old-2"])
    tail = await b.tail()
    await a.append(["new"])
    assert (await b.read(tail, wait=0))[1] == ["new"]


async def test_reads_come_in_batches_of_at_most_limit(logs: LogFactory) -> None:
    a = logs()
    await a.append([str(n) for n in range(25)])
    cursor, first = await a.read(START, limit=10, wait=0)
    _, second = await a.read(cursor, limit=10, wait=0)
    assert first == [str(n) for n in range(10)]
    assert second == [str(n) for n in range(10, 20)]


async def test_an_empty_log_reads_nothing_after_waiting(logs: LogFactory) -> None:
    a = logs()
    assert await a.read(await a.tail(), wait=0.01) == (await a.tail(), [])


async def test_a_claim_is_won_once(logs: LogFactory) -> None:
    a, b = logs(), logs()
    assert await a.claim("conn-1:suspend", 60)
    assert not await b.claim("conn-1:suspend", 60)
    assert not await a.claim("conn-1:suspend", 60)
    assert await b.claim("conn-2:suspend", 60)


async def test_a_closed_log_refuses_every_call(store_url: str) -> None:
    log = open_traffic_log(store_url, FakeClock())
    await log.append(["1"])
    await log.close()
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "append": lambda: log.append(["2"]),
        "read": lambda: log.read(START, wait=0),
        "tail": log.tail,
        "claim": lambda: log.claim("key", 1.0),
    }
    for name, call in calls.items():
        with pytest.raises(StoreError):
            await call()
            pytest.fail(f"{name} answered after close()")
    await log.close()  # a second close does nothing


async def test_sqlite_claims_expire_and_old_records_go_by_the_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    log = SqliteTrafficLog(tmp_path / "traffic.db", clock, retention=600)
    try:
        assert await log.claim("k", 60)
        clock.advance(59)
        assert not await log.claim("k", 60)
        clock.advance(2)
        assert await log.claim("k", 60)
        await log.append(["old"])
        clock.advance(601)
        await log.append(["new"])
        assert (await log.read(START, wait=0))[1] == ["new"]
    finally:
        await log.close()


async def test_sqlite_log_lives_beside_the_registry(tmp_path: Path) -> None:
    log = open_traffic_log(f"sqlite:///{tmp_path / 'var' / 'registry.db'}")
    try:
        await log.append(["x"])
        assert (tmp_path / "var" / "traffic.db").exists()
    finally:
        await log.close()


async def test_sqlite_log_keeps_about_its_retention_as_it_goes(tmp_path: Path) -> None:
    clock = FakeClock()
    log = SqliteTrafficLog(tmp_path / "traffic.db", clock, retention=600)
    try:
        assert await log.claim("old-verdict", 60)
        for n in range(80):  # a record every 30 s for 40 minutes
            await log.append([str(n)])
            clock.advance(30)
        _, kept = await log.read(START, limit=1000, wait=0)
        assert kept[-1] == "79"
        assert 600 / 30 <= len(kept) <= (600 + MARK_S) / 30 + 1, len(kept)
        claims = log._db.execute("SELECT COUNT(*) FROM claims").fetchone()[0]
        assert claims == 0  # expired claims go too
    finally:
        await log.close()
