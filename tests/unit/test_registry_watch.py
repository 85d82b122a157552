"""Fail-static, unit by unit: the SMTP path's bounded, shared sync; the breaker that keeps it
off a store known to be down; the probe; the start from a copy; what /readyz and the
metrics say. Over a real SqliteStore made to fail or hang on demand, on a FakeClock
(the probe's interval and the staleness bound move with it; nothing sleeps for time).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.connections import plain
from ugem.core.clock import FakeClock
from ugem.core.errors import StoreError
from ugem.core.metrics import Metrics
from ugem.core.registry import Registry
from ugem.core.registry_copy import CopyFile
from ugem.core.registry_watch import REFUSED, UNREACHABLE, UP, Freshness
from ugem.core.store.sqlite import SqliteStore

TIMEOUT = 0.05  # the SMTP path's bound here, seconds


class Flaky(SqliteStore):
    """A store whose `generation()` (every sync's first call) fails or hangs when told."""

    mode = "ok"  # ok, down, hung
    calls = 0
    local = False  # it stands for a store across a network, which may hang

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.release = asyncio.Event()

    async def generation(self) -> tuple[str | None, int]:
        self.calls += 1
        if self.mode == "down":
            raise StoreError("redis store redis://10.0.0.9:6379/0: Connection refused")
        if self.mode == "hung":
            await self.release.wait()
        return await super().generation()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Flaky]:
    flaky = Flaky(tmp_path / "registry.db")
    await flaky.add(plain("a.gov.kz", "192.0.2.10"))
    yield flaky
    flaky.release.set()
    await flaky.close()


def registry_of(store: Flaky, clock: FakeClock, tmp_path: Path) -> Registry:
    freshness = Freshness(relay_timeout=TIMEOUT, max_stale=3600.0, probe_interval=2.0)
    return Registry(store, clock, freshness, CopyFile(tmp_path / "registry-copy.json"))


def events(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ugem.core.registry_watch"]


async def test_a_hung_store_costs_one_bounded_wait_then_none(
    tmp_path: Path, store: Flaky, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    registry = registry_of(store, clock, tmp_path)
    await registry.watch.start()
    store.mode, store.calls = "hung", 0
    began = time.monotonic()
    answers = await asyncio.gather(*(registry.relay_sync() for _ in range(20)))  # at once
    first = time.monotonic() - began
    assert answers == [True] * 20 and store.calls == 1  # one sync, shared by all
    assert first < 1.0 and registry.watch.state == UNREACHABLE
    began = time.monotonic()
    for _ in range(100):
        assert await registry.relay_sync()  # the breaker is open: not one store call
    assert store.calls == 1 and time.monotonic() - began < 0.5
    assert _id(registry.by_address("192.0.2.10")) == "a.gov.kz"

    store.release.set()  # the hung call answers after all: the store is back
    await eventually_up(registry)
    assert events(caplog) == ["store_unreachable", "store_recovered"]
    assert not [r for r in caplog.records if r.exc_info]


async def eventually_up(registry: Registry) -> None:
    for _ in range(100):
        if registry.watch.state == UP:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still {registry.watch.state}")


async def test_the_probe_tries_a_store_found_down_every_interval(
    tmp_path: Path, store: Flaky, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    registry = registry_of(store, clock, tmp_path)
    await registry.watch.start()
    store.mode, store.calls = "down", 0
    await registry.watch.probe()  # while up, every step syncs
    assert (store.calls, registry.watch.state) == (1, UNREACHABLE)
    for _ in range(5):
        await registry.watch.probe()
        assert await registry.relay_sync()
    assert store.calls == 1  # neither the probe before its interval nor the SMTP path
    clock.advance(2.0)
    await registry.watch.probe()
    assert store.calls == 2
    store.mode = "ok"
    clock.advance(2.0)
    await registry.watch.probe()
    assert registry.watch.state == UP and store.calls == 3
    assert events(caplog) == ["store_unreachable", "store_recovered"]
    [down] = [r for r in caplog.records if r.getMessage() == "store_unreachable"]
    fields = getattr(down, "fields", {})
    assert "Connection refused" in fields["reason"] and fields["copy_age"] == 0.0


async def test_readiness_says_degraded_then_not_ready_past_max_stale(
    tmp_path: Path, store: Flaky, caplog: pytest.LogCaptureFixture
) -> None:
    clock, metrics = FakeClock(), Metrics()
    registry = registry_of(store, clock, tmp_path)
    registry.watch.export(metrics)
    await registry.watch.start()
    assert registry.watch.readiness() == (True, "ok")
    assert metrics.registry.get_sample_value("ugem_store_up") == 1.0
    store.mode = "down"
    clock.advance(10)
    await registry.watch.probe()
    ready, reason = registry.watch.readiness()
    assert ready and reason.startswith("degraded: store unreachable: redis store")
    assert "registry copy 10 s old, relaying on it" in reason
    assert metrics.registry.get_sample_value("ugem_store_up") == 0.0
    assert metrics.registry.get_sample_value("ugem_registry_copy_age_seconds") == 10.0
    with pytest.raises(StoreError, match="changes that need it wait until it is back"):
        registry.watch.require_store()

    clock.advance(3600 - 10)
    assert await registry.relay_sync()  # exactly max_stale: still serving
    clock.advance(1)
    assert not await registry.relay_sync()
    ready, reason = registry.watch.readiness()
    assert not ready and reason.endswith("over [store] max_stale 3600 s")
    assert not await registry.relay_sync()
    assert events(caplog) == ["store_unreachable", "registry_copy_too_old"]  # once each


async def test_a_store_emptied_is_refused_and_served_around(
    tmp_path: Path, store: Flaky, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    registry = registry_of(store, clock, tmp_path)
    await registry.watch.start()
    await store.delete("a.gov.kz")
    assert await registry.relay_sync()
    assert registry.watch.state == REFUSED
    assert _id(registry.by_address("192.0.2.10")) == "a.gov.kz"
    assert "holds no connection" in registry.watch.readiness()[1]
    assert events(caplog) == ["store_refused"]


async def test_a_start_with_the_store_down_serves_a_fresh_copy_only(
    tmp_path: Path, store: Flaky, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    await registry_of(store, clock, tmp_path).watch.start()  # the copy on disk
    store.mode = "down"
    clock.advance(3000)
    restarted = registry_of(store, clock, tmp_path)
    await restarted.watch.start()
    assert restarted.watch.state == UNREACHABLE
    assert _id(restarted.by_address("192.0.2.10")) == "a.gov.kz"
    assert restarted.watch.status().copy_age == 3000.0

    clock.advance(601)  # past max_stale: the copy is too old to start on
    with pytest.raises(StoreError, match="registry copy on disk is 3601 s old"):
        await registry_of(store, clock, tmp_path).watch.start()
    (tmp_path / "registry-copy.json").unlink()
    with pytest.raises(StoreError, match="no registry copy on disk"):
        await registry_of(store, clock, tmp_path).watch.start()
    (tmp_path / "registry-copy.json").write_text("{", encoding="utf-8")
    with pytest.raises(StoreError, match="no registry copy on disk"):
        await registry_of(store, clock, tmp_path).watch.start()
    assert "registry_copy_unusable" in [r.getMessage() for r in caplog.records]
    assert [r.levelno for r in caplog.records if r.exc_info] == []
    assert logging.ERROR not in [r.levelno for r in caplog.records]


def _id(conn: object) -> str | None:
    return getattr(conn, "id", None)
