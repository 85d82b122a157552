"""A worker's status file (`ugem.core.runtime`): written whole, read back, judged running or not.

A file written by this (live) process and fresh is running; one of a pid that
is gone, or not refreshed for `STALE` seconds, is not; a damaged file is
named as unreadable and the others are still read; the recent-events handler
keeps the last `RECENT` warnings, not INFO lines, with their fields cut.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from pathlib import Path

from ugem.core.log import event
from ugem.core.runtime import (
    DETAIL,
    RECENT,
    STALE,
    RecentEvent,
    RecentEvents,
    WorkerState,
    read_workers,
    remove_worker,
    worker_path,
    write_worker,
)

NOW = 1_800_000_000.0


def state(worker: int, pid: int, written_at: float = NOW) -> WorkerState:
    recent = (RecentEvent(NOW - 5, "warning", "store_unreachable", '{"error": "x"}'),)
    return WorkerState(
        worker, pid, "0.1.0", NOW - 100, written_at, "127.0.0.1:2525", "127.0.0.1:8025",
        "degraded", "degraded: the store is unreachable", recent,
    )  # fmt: skip


def gone_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def test_a_fresh_file_of_a_live_process_is_read_back_as_running(tmp_path: Path) -> None:
    write_worker(tmp_path, state(0, os.getpid()))
    [found] = read_workers(tmp_path, NOW + 1).found
    written = state(0, os.getpid())
    assert dataclasses.replace(found, recent=written.recent) == written
    assert found.running and found.recent[0].event == "store_unreachable"
    assert found.recent[0].worker == 0
    assert not list(tmp_path.glob("*.tmp"))  # written through a temporary file, renamed


def test_a_dead_pid_or_a_stale_file_is_not_running(tmp_path: Path) -> None:
    write_worker(tmp_path, state(0, gone_pid()))
    write_worker(tmp_path, state(1, os.getpid(), written_at=NOW - STALE - 1))
    write_worker(tmp_path, state(2, os.getpid()))
    found = read_workers(tmp_path, NOW).found
    assert [(w.worker, w.running) for w in found] == [(0, False), (1, False), (2, True)]


def test_a_damaged_file_is_named_and_the_others_are_read(tmp_path: Path) -> None:
    write_worker(tmp_path, state(0, os.getpid()))
    worker_path(tmp_path, 1).write_text('{"worker": 1, "pid":', encoding="utf-8")
    worker_path(tmp_path, 2).write_text('{"worker": 2}', encoding="utf-8")  # fields missing
    workers = read_workers(tmp_path, NOW)
    assert [w.worker for w in workers.found] == [0]
    assert workers.unreadable == ["worker-1.json", "worker-2.json"]


def test_no_directory_is_no_worker_and_a_clean_stop_removes_the_file(tmp_path: Path) -> None:
    assert read_workers(tmp_path / "absent", NOW).found == []
    write_worker(tmp_path, state(0, os.getpid()))
    remove_worker(tmp_path, 0)
    remove_worker(tmp_path, 0)  # again: nothing to say
    assert read_workers(tmp_path, NOW).found == []


def test_the_recent_events_are_the_last_warnings_with_their_fields_cut() -> None:
    logger = logging.getLogger("test.runtime")
    logger.setLevel(logging.DEBUG)
    handler = RecentEvents()
    logger.addHandler(handler)
    try:
        event(logger, "accepted", queue_id="q1")  # INFO: not kept
        for n in range(RECENT + 5):
            event(logger, "spool_error", logging.ERROR, n=n, text="x" * (DETAIL * 2))
    finally:
        logger.removeHandler(handler)
    kept = handler.events()
    assert len(kept) == RECENT
    assert {e.event for e in kept} == {"spool_error"} and kept[0].level == "error"
    assert kept[-1].detail.startswith(f'{{"n": {RECENT + 4}') and len(kept[-1].detail) == DETAIL
