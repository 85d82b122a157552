"""The durable spool (relay/queue/spool.py): each rule of its contract, on real SQLite files.

Every test uses a fresh file under tmp_path and a FakeClock; other processes
are real subprocesses (a second writer, a process killed with SIGKILL).
Corruption is made by hand: rows tampered with through sqlite3, garbage
written over the file, an index page overwritten.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relay.queue.message import QueuedMessage, QueueState
from relay.queue.spool import _SCHEMA, RecoveryReport, Spool, spool_path
from ugem.core.clock import FakeClock
from ugem.core.config import Config, NodeConfig
from ugem.core.errors import SpoolError, SpoolFullError, UsageError
from ugem.core.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
ACTIVE, DEFERRED, HELD = QueueState.ACTIVE, QueueState.DEFERRED, QueueState.HELD


def message(
    n: int, *, size: int = 0, connection: str = "minfin.gov.kz", sender: str = "a@minfin.gov.kz"
) -> QueuedMessage:
    body = b"Subject: test %d\r\n\r\nbinary \x00\xff\xfe body\r\n" % n
    pad = max(0, size - len(body))
    data = body + (hashlib.sha256(body).digest() * (pad // 32 + 1))[:pad]
    return QueuedMessage(
        id=f"Q{n:011d}",
        sender=sender,
        rcpts=[f"r{n}@example.org", "x@example.net"],
        data=data,
        size=len(data),
        connection=connection,
        client_ip="10.0.0.1",
        received_at=1_767_225_600.0 + n,
        original_rcpts=[f"r{n}@example.org", "x@example.net"],
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "spool" / "queue.db"


@pytest.fixture
async def spool(path: Path, clock: FakeClock, metrics: Metrics) -> AsyncIterator[Spool]:
    s = Spool(path, clock, metrics)
    await s.open()
    yield s
    await s.close()


async def reopen(path: Path, clock: FakeClock, **kw: int) -> tuple[Spool, RecoveryReport]:
    s = Spool(path, clock, Metrics(), **kw)
    return s, await s.open()


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def sql(path: Path, *statements: str | tuple[str, tuple[Any, ...]]) -> list[list[Any]]:
    """Run statements on the file through a connection of its own (as another process would)."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        return [db.execute(*(s if isinstance(s, tuple) else (s,))).fetchall() for s in statements]
    finally:
        db.close()


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a separate Python process with the project on its path."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# ---------------------------------------------------------------- commit and read back


async def test_commit_then_get_returns_the_whole_message(spool: Spool) -> None:
    msg = message(1)
    await spool.commit(msg)
    got = await spool.get(msg.id)
    assert got == msg  # every field, the text and original_rcpts included
    bare = await spool.get(msg.id, with_data=False)
    assert bare is not None and bare.data is None and bare.original_rcpts == msg.original_rcpts
    assert await spool.get("NOSUCHID") is None


async def test_commit_returns_after_a_synchronous_full_commit(spool: Spool, path: Path) -> None:
    msg = message(2)
    await spool.commit(msg)
    # Committed: another connection (as another process would) sees the row right away.
    rows, mode = sql(
        path, ("SELECT data FROM messages WHERE id = ?", (msg.id,)), "PRAGMA journal_mode"
    )
    assert (rows, mode) == ([(msg.data,)], [("wal",)])

    def probe(conn: sqlite3.Connection) -> tuple[int, int]:  # runs on the writer's connection
        return conn.execute("PRAGMA synchronous").fetchone()[0], 0

    assert await spool._write("probe", "", probe) == 2  # 2 is FULL


async def test_concurrent_commits_share_one_fsync(
    spool: Spool, metrics: Metrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    observe = metrics.fsync_batch.observe

    def record(n: float, exemplar: Any = None) -> None:
        batches.append(int(n))
        observe(n, exemplar)

    monkeypatch.setattr(metrics.fsync_batch, "observe", record)
    msgs = [message(i, size=4096) for i in range(50)]
    await asyncio.gather(*(spool.commit(m) for m in msgs))
    print(f"\n50 concurrent commits: {len(batches)} fsyncs, batch sizes {batches}")
    assert sum(batches) == 50 and max(batches) > 1
    assert sample(metrics, "ugem_spool_fsync_batch_messages_sum") == 50

    async def session(first: int) -> None:  # one client sending 10 messages in a row
        for n in range(first, first + 10):
            await spool.commit(message(n, size=4096))

    batches.clear()
    await asyncio.gather(*(session(100 + 10 * k) for k in range(50)))
    mean = sum(batches) / len(batches)
    print(
        f"50 sessions x 10 commits: {len(batches)} fsyncs, mean batch {mean:.1f}, "
        f"largest {max(batches)}, sizes {sorted(batches, reverse=True)}"
    )
    assert sum(batches) == 500 and mean > 2
    assert spool.size() == 550


async def test_max_batch_caps_the_messages_per_fsync(path: Path, clock: FakeClock) -> None:
    metrics = Metrics()
    s = Spool(path, clock, metrics, max_batch=4)
    await s.open()
    try:
        await asyncio.gather(*(s.commit(message(i)) for i in range(40)))
    finally:
        await s.close()
    assert sample(metrics, "ugem_spool_fsync_batch_messages_bucket", le="4.0") == sample(
        metrics, "ugem_spool_fsync_batch_messages_count"
    )  # every batch held at most 4


async def test_a_cancelled_commit_is_absent_or_complete(path: Path, clock: FakeClock) -> None:
    spool = Spool(path, clock, Metrics())
    await spool.open()
    early = [message(i, size=300_000) for i in range(5)]  # cancelled before they ran at all
    late = [message(i, size=300_000) for i in range(5, 25)]  # cancelled while being written
    early_tasks = [asyncio.create_task(spool.commit(m)) for m in early]
    for t in early_tasks:
        t.cancel()
    late_tasks = [asyncio.create_task(spool.commit(m)) for m in late]
    await asyncio.sleep(0)  # each late task has handed its write to the writer thread
    for t in late_tasks:
        t.cancel()
    results = await asyncio.gather(*early_tasks, *late_tasks, return_exceptions=True)
    assert all(r is None or isinstance(r, asyncio.CancelledError) for r in results)
    await spool.close()

    again, report = await reopen(path, clock)
    try:
        assert report.quarantined == 0
        assert [await again.get(m.id) for m in early] == [None] * len(early)
        for m in late:  # the write was not cancelled with its caller: complete, byte for byte
            assert await again.get(m.id) == m
    finally:
        await again.close()


def test_kill_9_loses_no_acknowledged_message(path: Path) -> None:
    code = """
        import asyncio, os, signal, sys
        from pathlib import Path
        from tests.unit.test_spool import message
        from relay.queue.spool import Spool
        from ugem.core.clock import FakeClock
        from ugem.core.metrics import Metrics

        async def main():
            spool = Spool(Path(sys.argv[1]), FakeClock(), Metrics())
            await spool.open()
            acked = 0
            async def one(i):
                nonlocal acked
                msg = message(i, size=20_000)
                await spool.commit(msg)
                print(msg.id, flush=True)
                acked += 1
                if acked == 150:
                    os.kill(os.getpid(), signal.SIGKILL)
            await asyncio.gather(*(one(i) for i in range(400)))

        asyncio.run(main())
    """
    result = run_python(code, str(path))
    assert result.returncode == -9, result.stderr
    acked = result.stdout.split()
    assert len(acked) >= 150

    async def check() -> None:
        spool, report = await reopen(path, FakeClock())
        try:
            assert report.quarantined == 0 and report.moved_aside is None
            for queue_id in acked:
                assert await spool.get(queue_id) == message(int(queue_id[1:]), size=20_000)
        finally:
            await spool.close()

    asyncio.run(check())


# ---------------------------------------------------------------- states and scheduling


async def test_reopen_finds_every_message_in_its_state(path: Path, clock: FakeClock) -> None:
    spool = Spool(path, clock, Metrics())
    await spool.open()
    msgs = [message(i) for i in range(4)]
    for m in msgs:
        await spool.commit(m)
    deferred = msgs[1]
    deferred.state, deferred.attempts, deferred.next_attempt = DEFERRED, 2, clock.now() + 300
    deferred.rcpts, deferred.last_error = ["x@example.net"], "451 4.3.0 try later"
    await spool.update(deferred)
    assert await spool.hold([msgs[2].id], reason="investigating") == 1
    await spool.remove(msgs[3].id)
    await spool.close()

    again, report = await reopen(path, clock)
    try:
        assert report == RecoveryReport(messages=3, quarantined=0, moved_aside=None)
        assert again.size() == 3
        assert await again.get(msgs[0].id) == msgs[0]
        assert await again.get(deferred.id) == deferred
        held = await again.get(msgs[2].id)
        assert held is not None and (held.state, held.hold_reason) == (HELD, "investigating")
        assert held.data == msgs[2].data
        assert await again.get(msgs[3].id) is None
    finally:
        await again.close()


async def test_due_orders_by_next_attempt_and_leaves_out_the_rest(
    spool: Spool, clock: FakeClock
) -> None:
    now = clock.now()
    plan = {  # n: (state, next_attempt)
        0: (DEFERRED, now - 10),
        1: (ACTIVE, now - 5),
        2: (DEFERRED, now + 60),
        3: (DEFERRED, now - 30),
        4: (ACTIVE, 0.0),
        5: (DEFERRED, now),
    }
    for n, (state, when) in plan.items():
        msg = message(n)
        msg.state, msg.next_attempt = state, when
        await spool.commit(msg)
    await spool.hold([message(1).id], reason="x")

    due = await spool.due(now, limit=10)
    assert [m.id for m in due] == [message(n).id for n in (4, 3, 0, 5)]
    assert all(m.data == message(int(m.id[1:])).data for m in due)  # with their text
    assert [m.id for m in await spool.due(now, limit=2)] == [message(4).id, message(3).id]
    skip = [message(4).id, message(0).id]
    assert [m.id for m in await spool.due(now, 2, exclude=skip)] == [message(3).id, message(5).id]
    assert [m.id for m in await spool.due(now + 60, 10, exclude=skip)][-1] == message(2).id
    assert await spool.due(now, 0) == []


async def test_update_never_unholds_a_message_held_meanwhile(spool: Spool, path: Path) -> None:
    msg = message(1)
    await spool.commit(msg)
    operator = Spool(path, FakeClock(), Metrics())  # `ugem queue hold` beside the node
    await operator.open(recover=False)
    try:
        assert await operator.hold([msg.id], reason="operator") == 1
    finally:
        await operator.close()
    msg.state, msg.attempts, msg.last_error = DEFERRED, 1, "451 busy"
    await spool.update(msg)  # the node's attempt ends after the hold
    got = await spool.get(msg.id, with_data=False)
    assert got is not None
    assert (got.state, got.hold_reason, got.attempts, got.last_error) == (
        HELD,
        "operator",
        1,
        "451 busy",
    )
    assert await spool.due(1e12, 10) == []


async def test_update_can_hold_and_does_not_resurrect(spool: Spool) -> None:
    msg, gone = message(1), message(2)
    await spool.commit(msg)
    await spool.commit(gone)
    msg.state, msg.hold_reason = HELD, "suspended"
    await spool.update(msg)
    got = await spool.get(msg.id, with_data=False)
    assert got is not None and (got.state, got.hold_reason) == (HELD, "suspended")
    assert await spool.delete([gone.id]) == 1
    gone.attempts = 1
    await spool.update(gone)
    assert await spool.get(gone.id) is None and spool.size() == 1


async def test_hold_release_retry_delete(spool: Spool, clock: FakeClock) -> None:
    a, b, c = message(1), message(2, connection="edu.gov.kz"), message(3)
    c.state, c.next_attempt = DEFERRED, clock.now() + 3600
    for m in (a, b, c):
        await spool.commit(m)
    assert await spool.hold(connection="minfin.gov.kz", reason="suspended") == 2
    assert await spool.hold([a.id], reason="operator") == 0  # keeps its first reason
    assert await spool.list(state=HELD) == [
        await spool.get(a.id, with_data=False),
        await spool.get(c.id, with_data=False),
    ]
    assert await spool.release(connection="minfin.gov.kz", reason="other") == 0
    clock.advance(10)
    assert await spool.release([a.id], reason="suspended") == 1
    released = await spool.get(a.id)
    assert released is not None
    assert (released.state, released.next_attempt, released.hold_reason) == (
        ACTIVE,
        clock.now(),
        "",
    )
    assert await spool.release(connection="minfin.gov.kz") == 1  # c, whatever its reason
    c_now = await spool.get(c.id)
    assert c_now is not None and c_now.state == ACTIVE

    b.state, b.next_attempt = DEFERRED, clock.now() + 100
    await spool.update(b)
    assert await spool.retry([a.id]) == 0  # not deferred
    assert await spool.retry() == 1
    assert [m.id for m in await spool.due(clock.now(), 10)] == [a.id, b.id, c.id]

    assert await spool.delete([a.id, "NOSUCHID"]) == 1
    assert await spool.delete(connection="minfin.gov.kz") == 1
    assert [m.id for m in await spool.list()] == [b.id] and spool.size() == 1
    for call in (spool.hold(reason="x"), spool.release(), spool.delete()):
        with pytest.raises(UsageError):
            await call


async def test_list_filters_and_leaves_the_text_out(spool: Spool) -> None:
    for n in range(5):
        await spool.commit(message(n, connection="edu.gov.kz" if n % 2 else "minfin.gov.kz"))
    listed = await spool.list(connection="edu.gov.kz")
    assert [m.id for m in listed] == [message(1).id, message(3).id]
    assert all(m.data is None for m in listed)
    assert len(await spool.list(limit=2)) == 2
    assert await spool.list(state=DEFERRED) == []


async def test_counts_and_size(spool: Spool, path: Path, metrics: Metrics) -> None:
    for n in range(6):
        await spool.commit(message(n))
    await spool.hold([message(0).id, message(1).id], reason="x")
    d = message(2)
    d.state = DEFERRED
    await spool.update(d)
    assert spool.size() == 6
    await spool.remove(message(5).id)
    await spool.remove(message(5).id)  # twice: counted once
    assert spool.size() == 5
    assert await spool.counts() == {ACTIVE: 2, DEFERRED: 1, HELD: 2}
    assert sample(metrics, "ugem_queue_messages", state="held") == 2
    # Another process deletes: size() follows at the next counts().
    sql(path, ("DELETE FROM messages WHERE id = ?", (message(4).id,)))
    assert spool.size() == 5
    assert sum((await spool.counts()).values()) == 4 and spool.size() == 4


async def test_counts_give_the_age_of_the_oldest_message_by_state(
    spool: Spool, clock: FakeClock, metrics: Metrics
) -> None:
    for n in range(4):  # message(n) arrived at the clock's start + n
        await spool.commit(message(n))
    await spool.hold([message(1).id, message(3).id], reason="x")
    clock.advance(100)
    await spool.counts()

    def age(state: str) -> float:
        return sample(metrics, "ugem_queue_oldest_age_seconds", state=state)

    assert (age("active"), age("held"), age("deferred")) == (100, 99, 0)
    clock.advance(50)  # the age is read at the scrape: it grows without another scan
    assert (age("active"), age("held")) == (150, 149)
    await spool.remove(message(0).id)
    await spool.remove(message(2).id)
    await spool.counts()
    assert (age("active"), age("held")) == (0, 149)


async def test_a_second_process_edits_while_the_node_runs(spool: Spool, path: Path) -> None:
    msgs = [message(n) for n in range(3)]
    for m in msgs:
        await spool.commit(m)
    code = """
        import asyncio, sys
        from pathlib import Path
        from relay.queue.spool import Spool
        from ugem.core.clock import FakeClock
        from ugem.core.metrics import Metrics

        async def main():
            spool = Spool(Path(sys.argv[1]), FakeClock(), Metrics())
            await spool.open(recover=False)
            try:
                print(await spool.hold([sys.argv[2]], reason="by hand"))
                print(await spool.delete([sys.argv[3]]))
            finally:
                await spool.close()

        asyncio.run(main())
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        textwrap.dedent(code),
        str(path),
        msgs[0].id,
        msgs[1].id,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert (proc.returncode, out.split()) == (0, [b"1", b"1"]), err
    assert [m.id for m in await spool.due(1e12, 10)] == [msgs[2].id]
    held = await spool.get(msgs[0].id, with_data=False)
    assert held is not None and held.state == HELD and held.hold_reason == "by hand"
    await spool.commit(message(9))  # the node still writes
    assert len(await spool.list()) == 3


# ---------------------------------------------------------------- failures


async def test_full_spool_refuses_then_recovers(path: Path, clock: FakeClock) -> None:
    metrics = Metrics()
    spool = Spool(path, clock, metrics, max_size_mb=1)
    await spool.open()
    try:
        kept: list[QueuedMessage] = []
        with pytest.raises(SpoolFullError):
            for n in range(100):
                msg = message(n, size=64 * 1024)
                await spool.commit(msg)
                kept.append(msg)
        assert 5 < len(kept) < 16
        assert await spool.get(message(len(kept)).id) is None  # the refused one is not there
        assert spool.health() == (True, "ok")  # full is not unhealthy: it clears
        assert sample(metrics, "ugem_spool_errors_total", kind="full") == 1
        assert spool.size() == len(kept)
        for msg in kept[:3]:
            await spool.remove(msg.id)
        await spool.commit(message(500, size=64 * 1024))
        assert spool.size() == len(kept) - 2
    finally:
        await spool.close()


async def test_a_batch_is_split_so_one_bad_op_fails_alone(spool: Spool, metrics: Metrics) -> None:
    await spool.commit(message(0))
    batch = [message(n) for n in range(1, 8)]
    results = await asyncio.gather(
        *(spool.commit(m) for m in batch), spool.commit(message(0)), return_exceptions=True
    )
    assert results[:-1] == [None] * len(batch)
    assert isinstance(results[-1], SpoolError)  # the same id twice
    assert spool.size() == 8 and len(await spool.list()) == 8
    assert spool.health() == (True, "ok")  # the op's fault, not the storage's
    assert sample(metrics, "ugem_spool_errors_total", kind="rejected") == 1


async def test_a_write_failure_fails_every_caller_and_health(
    spool: Spool, path: Path, metrics: Metrics
) -> None:
    sql(path, "DROP TABLE messages")
    results = await asyncio.gather(
        *(spool.commit(message(n)) for n in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, SpoolError) and not isinstance(r, SpoolFullError) for r in results)
    ok, reason = spool.health()
    assert not ok and "no such table: messages" in reason
    assert sample(metrics, "ugem_spool_errors_total", kind="write") == 10
    assert spool.size() == 0
    sql(path, *(s for s in _SCHEMA.split(";") if s.strip()))  # repaired
    await spool.commit(message(1))
    assert spool.health() == (True, "ok")


async def test_closed_spool_is_unhealthy_and_refuses(path: Path, clock: FakeClock) -> None:
    spool = Spool(path, clock, Metrics())
    assert spool.health() == (False, "spool is not open")
    await spool.open()
    await spool.commit(message(1))
    await spool.close()
    await spool.close()  # twice is fine
    assert spool.health() == (False, "spool is closed")
    with pytest.raises(SpoolError):
        await spool.commit(message(2))
    with pytest.raises(SpoolError):
        await spool.get(message(1).id)


# ---------------------------------------------------------------- recovery


async def test_a_tampered_record_is_quarantined_and_logged(
    path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(path, clock, Metrics())
    await spool.open()
    for n in range(4):
        await spool.commit(message(n))
    await spool.close()
    sql(
        path,
        ("UPDATE messages SET data = ? WHERE id = ?", (b"evil", message(1).id)),
        ("UPDATE messages SET envelope = '{not json' WHERE id = ?", (message(2).id,)),
        ("UPDATE messages SET state = 'held' WHERE id = ?", (message(3).id,)),
    )

    caplog.set_level(logging.ERROR, logger="relay.queue")
    again, report = await reopen(path, clock)
    try:
        assert (report.messages, report.quarantined, report.moved_aside) == (1, 3, None)
        assert [m.id for m in await again.list()] == [message(0).id]
        assert again.size() == 1
    finally:
        await again.close()
    logged = {
        str(getattr(r, "fields", {}).get("queue_id")): r
        for r in caplog.records
        if r.msg == "spool_quarantined"
    }
    assert sorted(logged) == [message(n).id for n in (1, 2, 3)]
    assert all(r.levelno == logging.ERROR for r in logged.values())
    (rows,) = sql(path, "SELECT id, reason, data FROM quarantine ORDER BY id")
    assert [r[0] for r in rows] == [message(n).id for n in (1, 2, 3)]
    assert "text" in rows[0][1] and "decoded" in rows[1][1] and "envelope" in rows[2][1]
    assert rows[0][2] == b"evil"  # kept as it was, for a human to look at


async def test_garbage_over_the_file_is_moved_aside(
    path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(path, clock, Metrics())
    await spool.open()
    await spool.commit(message(1))
    await spool.close()
    garbage = os.urandom(8192)
    path.write_bytes(garbage)

    caplog.set_level(logging.ERROR, logger="relay.queue")
    again, report = await reopen(path, clock)
    try:
        aside = path.with_name(f"queue.db.corrupt-{int(clock.now())}")
        assert report == RecoveryReport(0, 0, str(aside))
        assert aside.read_bytes() == garbage
        await again.commit(message(2))  # a fresh, working spool
        assert [m.id for m in await again.list()] == [message(2).id]
    finally:
        await again.close()
    assert any(r.msg == "spool_moved_aside" and r.levelno == logging.ERROR for r in caplog.records)


async def test_a_corrupt_index_moves_the_file_aside_but_keeps_every_message(
    path: Path, clock: FakeClock
) -> None:
    spool = Spool(path, clock, Metrics())
    await spool.open()
    msgs = [message(n) for n in range(200)]
    await asyncio.gather(*(spool.commit(m) for m in msgs))
    await spool.close()
    [(page,)], [(page_size,)] = sql(
        path, "SELECT rootpage FROM sqlite_master WHERE name = 'messages_due'", "PRAGMA page_size"
    )
    with path.open("r+b") as f:  # the index fails PRAGMA quick_check; the table is whole
        f.seek((int(page) - 1) * int(page_size))
        f.write(b"\xa5" * int(page_size))

    again, report = await reopen(path, clock)
    try:
        assert report.moved_aside is not None and Path(report.moved_aside).exists()
        assert (report.messages, report.quarantined) == (200, 0)
        assert [m.id for m in await again.due(clock.now(), 500)] == [m.id for m in msgs]
        assert await again.get(msgs[77].id) == msgs[77]
    finally:
        await again.close()


async def test_a_second_process_does_not_recover(path: Path, clock: FakeClock) -> None:
    spool = Spool(path, clock, Metrics())
    await spool.open()
    await spool.commit(message(1))
    await spool.close()
    sql(path, ("UPDATE messages SET data = x'00' WHERE id = ?", (message(1).id,)))
    cli = Spool(path, clock, Metrics())
    report = await cli.open(recover=False)
    try:  # quarantining is the node's job at its start, not the CLI's
        assert report == RecoveryReport(1, 0, None)
        assert [m.id for m in await cli.list()] == [message(1).id]
    finally:
        await cli.close()


def test_spool_path_is_under_the_data_dir(tmp_path: Path) -> None:
    config = Config(node=NodeConfig(data_dir=str(tmp_path)))
    assert spool_path(config) == tmp_path / "spool" / "queue.db"
