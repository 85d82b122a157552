"""WAL checkpoints run beside the commits and never crash a closing spool.

The checkpointer runs on the reader's thread; closing the spool while a
checkpoint is still running there once crashed the whole process (a
connection closed by one thread while another used it). With checkpoints run
back to back, every close lands in the middle of one.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from relay.queue import spool as spool_module
from relay.queue.message import QueuedMessage, new_queue_id
from relay.queue.spool import Spool
from ugem.core.clock import FakeClock
from ugem.core.metrics import Metrics


def message(clock: FakeClock) -> QueuedMessage:
    data = b"Subject: x\r\n\r\n" + b"y" * 4000 + b"\r\n"
    return QueuedMessage(
        new_queue_id(clock.now()),
        "a@gov.kz",
        ["b@example.org"],
        data,
        len(data),
        "gov.kz",
        "127.0.0.2",
        clock.now(),
        original_rcpts=["b@example.org"],
    )


async def test_closing_during_a_checkpoint_is_safe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "CHECKPOINT_INTERVAL", 0.0)
    clock = FakeClock()
    for _ in range(30):
        spool = Spool(tmp_path / "queue.db", clock, Metrics())
        await spool.open()
        await asyncio.gather(*(spool.commit(message(clock)) for _ in range(20)))
        await asyncio.sleep(0.001)
        await spool.close()
    assert (
        sqlite3.connect(tmp_path / "queue.db")
        .execute("SELECT count(*) FROM messages")
        .fetchone()[0]
        == 600
    )


async def test_checkpoints_keep_the_log_short_while_commits_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "CHECKPOINT_INTERVAL", 0.01)
    clock = FakeClock()
    spool = Spool(tmp_path / "queue.db", clock, Metrics())
    await spool.open()
    try:
        for _ in range(20):
            await asyncio.gather(*(spool.commit(message(clock)) for _ in range(50)))
        await asyncio.sleep(0.1)  # let a checkpoint run after the last commit
        frames = (
            sqlite3.connect(tmp_path / "queue.db")
            .execute("PRAGMA wal_checkpoint(PASSIVE)")
            .fetchone()
        )
        assert frames[0] == 0  # not busy
        assert frames[1] == frames[2]  # every frame of the log is in the database
    finally:
        await spool.close()
