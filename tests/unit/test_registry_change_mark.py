"""The SMTP path reads a local store only when its files changed (`SqliteStore.change_mark`).

At every MAIL FROM the registry asks whether the store changed; on SQLite a read
transaction for that cost the gateway an eighth of its throughput, so the answer
comes from the files' inode, size and modification time. What must hold: a quiet
store is not read again; a write by another process (the CLI, another worker) is
seen at the next MAIL; a write too recent to tell from the next one in a coarse
file-system clock gives no mark, so the store is read. No test sleeps: the files
are made older with os.utime.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.connections import plain
from ugem.core.clock import FakeClock
from ugem.core.registry import Registry
from ugem.core.store.sqlite import RACY_NS, SqliteStore


class Counting(SqliteStore):
    """A store that counts its reads of the generation (every sync's first call)."""

    reads = 0

    async def generation(self) -> tuple[str | None, int]:
        self.reads += 1
        return await super().generation()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Counting]:
    counting = Counting(tmp_path / "registry.db")
    await counting.add(plain("a.gov.kz", "192.0.2.10"))
    yield counting
    await counting.close()


def age(path: Path, seconds: float = 10.0) -> None:
    """Set the store's files back `seconds`, as if their last write were that old."""
    then = time.time_ns() - int(seconds * 1e9)
    for name in (path, Path(f"{path}-wal")):
        if name.exists():
            os.utime(name, ns=(then, then))


async def quiet_registry(store: Counting) -> Registry:
    registry = Registry(store, FakeClock())
    await registry.watch.start()
    age(store.path)
    assert await registry.relay_sync()  # the first MAIL after the files settled reads once
    store.reads = 0
    return registry


async def test_a_quiet_store_is_not_read_at_every_mail(store: Counting) -> None:
    registry = await quiet_registry(store)
    for _ in range(50):
        assert await registry.relay_sync()
    assert store.reads == 0
    assert registry.by_address("192.0.2.10") is not None


async def test_a_write_by_another_process_is_seen_at_the_next_mail(
    store: Counting, tmp_path: Path
) -> None:
    registry = await quiet_registry(store)
    cli = SqliteStore(tmp_path / "registry.db")  # the CLI's own handle on the file
    try:
        await cli.add(plain("b.gov.kz", "192.0.2.11"))
    finally:
        await cli.close()
    assert registry.by_address("192.0.2.11") is None
    assert await registry.relay_sync()
    assert store.reads == 1 and registry.by_address("192.0.2.11") is not None


async def test_a_write_too_recent_to_tell_from_the_next_gives_no_mark(store: Counting) -> None:
    assert store.change_mark() is None  # the fixture's write is microseconds old
    age(store.path, seconds=RACY_NS / 1e9 - 0.5)
    assert store.change_mark() is None  # still within the racy window
    age(store.path)
    mark = store.change_mark()
    assert mark is not None and mark == store.change_mark()
    registry = await quiet_registry(store)
    await store.add(plain("c.gov.kz", "192.0.2.12"))  # this process's own write
    assert store.change_mark() is None
    for _ in range(3):  # each MAIL reads until the write has aged past the window
        assert await registry.relay_sync()
    assert store.reads == 3
