"""The durable spool: every accepted message, on disk before its 250 is sent.

Promise: when `commit` returns, the message (envelope, text, checksum) is in a
committed SQLite transaction made with `synchronous=FULL`, so a `kill -9` or a
power cut cannot lose it; `open` after a crash finds every committed message
again, in the state it was last written in.

This module is the API (`Spool`, `spool_path`); the work is split by job:
`spool_records` (a message as a row, with its checksums), `spool_sql` (schema,
statements, connections, and why SQLite in WAL mode), `spool_select` (operators'
filters and the queue's shape by destination and age, in SQL), `spool_writer`
(the one writer thread: group commit) and `spool_recovery` (checks and repairs
at open).

How it works: writes are queued to the writer thread, which commits them in
batches. Callers await behind `asyncio.shield`, so a cancelled caller (client
hang-up mid-DATA) never cancels the write itself. Reads run on a separate
connection in one reader thread. The event loop never waits on the disk. WAL
checkpoints (copying the log into the database, with an fsync of its own)
never run inside a commit: the node's spool runs a PASSIVE checkpoint every
second on the reader thread, which does not block the writer, so no client's
250 waits for one.

How it fails: no space (SQLITE_FULL, ENOSPC, or the `max_size_mb` cap, which
is `PRAGMA max_page_count`) raises `SpoolFullError` (452 4.3.1) and clears as
soon as space is freed. A full disk (not the cap) also gives up the
`reserve_mb` kept in `queue.db.reserve` (`relay.queue.reserve`) and retries
the write once if it records rather than adds (a removal, an update, a hold),
so deliveries can still be recorded; from then on `commit` refuses new mail at
once and `health()` is false ("disk full"), until the checkpoint loop finds
room to make the reserve again. Any other failure raises `SpoolError` and
makes `health()` false with the reason until a write succeeds again (a write
refused on its own merits, such as a duplicate id, just fails); every op that
is not written fails its caller: nothing is lost silently. `open` quarantines
damaged records and moves an unusable file aside, never fatally. Reads do not
verify checksums again (`open` did); a row that cannot be decoded raises
`SpoolCorruptError`.

`adopt` is `commit` for a message another node hands over (a drain): under the
id it had there, once. In the same transaction as the message it records the
id in the `received` table, kept `keep` seconds; an id held or received within
that time is not written again (the answer is False: "already have it"), so a
transfer retried after a cut between this commit and the sender's removal never
queues a second copy, even when the first was delivered meanwhile."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import zlib
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

from relay.queue.message import QueuedMessage, QueueState
from relay.queue.reserve import Reserve
from relay.queue.spool_records import _decoded, _Head, _head_of
from relay.queue.spool_recovery import RecoveryReport as RecoveryReport  # re-exported
from relay.queue.spool_recovery import _Opener
from relay.queue.spool_select import shape_sql, totals_sql, where_of
from relay.queue.spool_sql import (
    _COUNTS,
    _DUE_IDS,
    _HAD,
    _HEAD,
    _INSERT,
    _INSERT_RECEIVED,
    _PRUNE_RECEIVED,
    Clauses,
    _checkpoint,
    _connect,
    _connect_writer,
    _read_rows,
    _rewrite,
    _spool_error,
    _store_head,
    _where,
)
from relay.queue.spool_sql import _SCHEMA as _SCHEMA  # re-exported (for the tests)
from relay.queue.spool_writer import T, Work, _Absolute, _Op, _retrieve, _Writer
from ugem.core.clock import Clock
from ugem.core.config import MIB, Config
from ugem.core.errors import SpoolError, SpoolFullError, UsageError
from ugem.core.log import event
from ugem.core.metrics import Metrics
from ugem.core.queue_filter import MailFilter

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL = 1.0  # seconds between WAL checkpoints (off the commit path)
_Counts = tuple[dict[QueueState, int], dict[QueueState, float]]  # by state: messages, oldest
# (key, bucket, messages) per key and age bucket; (bucket, messages) per bucket
Shape = tuple[list[tuple[str, int, int]], list[tuple[int, int]]]
Ids = list[str]


def spool_path(config: Config, worker: int = 0) -> Path:
    """Where a worker's spool lives: `<data_dir>/spool/queue.db`, `queue-w<i>.db` for i > 0."""
    name = "queue.db" if worker == 0 else f"queue-w{worker}.db"
    return Path(config.node.data_dir) / "spool" / name


def spool_paths(config: Config) -> list[Path]:
    """Every worker's spool that exists (worker 0's always, existing or not), in order."""
    first = spool_path(config)
    numbers = (p.stem.removeprefix("queue-w") for p in first.parent.glob("queue-w*.db"))
    workers = sorted(int(n) for n in numbers if n.isdigit() and int(n) > 0)
    return [first, *(spool_path(config, w) for w in workers)]


class Spool:
    """A node's message queue on disk; see the module docstring for the contract."""

    def __init__(
        self,
        path: Path,
        clock: Clock,
        metrics: Metrics,
        *,
        max_size_mb: int = 0,
        max_batch: int = 512,
        reserve_mb: int = 0,
    ) -> None:
        self.path = Path(path)
        self._clock, self._metrics = clock, metrics
        self._max_size_mb, self._max_batch = max_size_mb, max(1, max_batch)
        self._reserve = Reserve(self.path.with_name(self.path.name + ".reserve"), reserve_mb * MIB)
        self._disk_full = False  # out of disk: new mail refused until space is back
        self._writer: _Writer | None = None
        self._reader: tuple[ThreadPoolExecutor, sqlite3.Connection] | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self._closed = False

    # -------------------------------------------------------- lifecycle

    async def open(self, *, recover: bool = True) -> RecoveryReport:
        """Open (creating if needed). `recover=False` (for a second process such as the
        CLI, while a node may be running) skips the checks, the quarantine and the
        moving aside, which only the node's own start may do."""
        if self._writer is not None or self._closed:
            raise SpoolError(f"{self.path}: spool already opened")
        opener = _Opener(self.path, self._clock, self._max_size_mb)
        try:
            conn, reader, report = await asyncio.to_thread(self._open_sync, opener, recover)
        except sqlite3.Error as exc:
            raise _spool_error(exc) from exc
        writer = _Writer(conn, self._metrics, self._max_batch, report.messages, self._space_ran_out)
        self._writer = writer
        self._reader = (ThreadPoolExecutor(1, thread_name_prefix="spool-reader"), reader)
        if recover:
            if not await asyncio.to_thread(self._reserve.make):
                self._disk_full = True
                event(log, "spool_no_room_for_reserve", logging.WARNING, path=str(self.path))
            self._checkpointer = asyncio.create_task(self._checkpoints(), name="spool-checkpoint")
            event(
                log,
                "spool_opened",
                path=str(self.path),
                messages=report.messages,
                quarantined=report.quarantined,
                moved_aside=report.moved_aside or "",
            )
        return report

    @staticmethod
    def _open_sync(
        opener: _Opener, recover: bool
    ) -> tuple[sqlite3.Connection, sqlite3.Connection, RecoveryReport]:
        """The write connection, the read connection and what was found (blocking)."""
        if recover:
            conn, report = opener.recover()
        else:
            conn = _connect_writer(opener.path, opener.max_size_mb)
            count = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
            report = RecoveryReport(count, 0, None)
        try:
            reader = _connect(opener.path)
            reader.execute("PRAGMA query_only=1")
        except BaseException:
            conn.close()
            raise
        return conn, reader, report

    async def close(self) -> None:
        """Finish the writes already queued, then stop the threads. Idempotent."""
        self._closed = True
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            await asyncio.gather(self._checkpointer, return_exceptions=True)
            self._checkpointer = None
        writer, self._writer = self._writer, None
        reader, self._reader = self._reader, None
        if reader is not None:
            executor, conn = reader
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
            await asyncio.to_thread(executor.shutdown)
        if writer is not None:  # closed last, it checkpoints the WAL into the database
            await asyncio.to_thread(writer.stop)

    async def _checkpoints(self) -> None:
        """Every CHECKPOINT_INTERVAL, copy the WAL into the database (PASSIVE: it never
        blocks the writer), on the reader's thread with a connection of its own."""
        assert self._reader is not None
        executor = self._reader[0]
        loop = asyncio.get_running_loop()
        conn = await loop.run_in_executor(executor, _connect, self.path)
        try:
            while True:
                await asyncio.sleep(CHECKPOINT_INTERVAL)
                try:
                    await loop.run_in_executor(executor, _checkpoint, conn)
                except sqlite3.Error as exc:
                    event(log, "spool_checkpoint_failed", logging.WARNING, error=str(exc))
                await self.check_space()
        finally:
            # On the reader's thread, after a checkpoint still running there: a
            # cancelled run_in_executor does not stop the thread, and closing a
            # connection another thread is using crashes the process.
            with suppress(RuntimeError):  # the executor is already shut down
                executor.submit(conn.close)

    def size(self) -> int:
        """Messages in the spool (kept in memory: set at open, then counted per write)."""
        return self._writer.size if self._writer is not None else 0

    async def check_space(self) -> bool:
        """After a full disk: make the reserve again if there is room, and take new mail
        again once it is made. True when the spool is not (or no longer) out of disk."""
        if not self._disk_full or self._reader is None:
            return not self._disk_full
        loop = asyncio.get_running_loop()
        if await loop.run_in_executor(self._reader[0], self._reserve.restore):
            self._disk_full = False
            event(log, "spool_space_recovered", logging.WARNING, path=str(self.path))
        return not self._disk_full

    def _space_ran_out(self) -> bool:
        """(Writer thread) A write found no space. When the disk itself is short (not the
        max_size_mb cap), refuse new mail from now on and give up the reserve; True when
        that freed space."""
        if not self._reserve.disk_short():
            return False  # the cap, not the disk
        if not self._disk_full:
            self._disk_full = True
            event(log, "spool_disk_full", logging.ERROR, path=str(self.path))
        return self._reserve.spend()

    def health(self) -> tuple[bool, str]:
        if self._closed:
            return False, "spool is closed"
        if self._writer is None:
            return False, "spool is not open"
        if self._disk_full:
            free = self._reserve.free_space() // MIB
            return False, f"disk full ({free} MiB free): new mail refused until space is freed"
        if self._writer.failure:
            return False, self._writer.failure
        return True, "ok"

    # -------------------------------------------------------- plumbing

    async def _write(self, what: str, queue_id: str, work: Work[T]) -> T:
        """Queue `work` to the writer; return once its batch is committed (or failed)."""
        if self._writer is None:
            raise SpoolError("spool is closed" if self._closed else "spool is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        future.add_done_callback(_retrieve)
        self._writer.submit(_Op(what, queue_id, work, future, loop))
        return await asyncio.shield(future)  # a cancelled caller does not cancel the write

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._reader is None:
            raise SpoolError("spool is closed" if self._closed else "spool is not open")
        executor, conn = self._reader
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, work, conn)
        except sqlite3.Error as exc:
            raise SpoolError(f"spool read failed: {exc}") from exc

    async def _bulk(self, what: str, clauses: Clauses, change: Callable[[_Head], _Head]) -> int:
        """Rewrite the head of every row the clauses select, in one write; how many."""

        def work(conn: sqlite3.Connection) -> tuple[int, int]:
            return sum(_rewrite(conn, c, p, change) for c, p in clauses), 0

        return await self._write(what, "", work)

    @staticmethod
    def _need_selector(what: str, ids: Sequence[str] | None, connection: str | None) -> None:
        if ids is None and connection is None:
            raise UsageError(f"queue {what}: name queue ids or a connection")

    # -------------------------------------------------------- writes

    async def commit(self, msg: QueuedMessage) -> None:
        """Make a new message durable; it is fsynced when this returns."""
        if msg.data is None:
            raise ValueError(f"queue id {msg.id}: commit needs the message text")
        if self._disk_full:  # the room left is for recording deliveries, not new mail
            raise SpoolFullError("disk full: new mail waits until space is freed")
        head, data = _head_of(msg), msg.data

        def work(conn: sqlite3.Connection) -> tuple[None, int]:
            full = head._replace(data_crc=zlib.crc32(data))
            conn.execute(_INSERT, (*full, full.crc(), data))
            return None, 1

        await self._write("commit", msg.id, work)

    async def adopt(self, msg: QueuedMessage, *, keep: float) -> bool:
        """Make a message handed over by another node durable under its own id, once:
        True when it is fsynced now, False (nothing written) when this spool holds the id
        or received it within `keep` seconds. Refused as `commit` refuses new mail."""
        if msg.data is None:
            raise ValueError(f"queue id {msg.id}: adopt needs the message text")
        if self._disk_full:
            raise SpoolFullError("disk full: new mail waits until space is freed")
        head, data, now = _head_of(msg), msg.data, self._clock.now()

        def work(conn: sqlite3.Connection) -> tuple[bool, int]:
            conn.execute(_PRUNE_RECEIVED, (now - keep,))
            if conn.execute(_HAD, (head.id, head.id)).fetchone() is not None:
                return False, 0
            full = head._replace(data_crc=zlib.crc32(data))
            conn.execute(_INSERT, (*full, full.crc(), data))
            conn.execute(_INSERT_RECEIVED, (head.id, now))
            return True, 1

        return await self._write("adopt", msg.id, work)

    async def update(self, msg: QueuedMessage) -> None:
        """Persist the envelope after an attempt. A row HELD on disk stays HELD (with its
        reason); a row that is gone (deleted by an operator) stays gone."""
        draft = _head_of(msg)

        def work(conn: sqlite3.Connection) -> tuple[None, int]:
            row = conn.execute(
                "SELECT state, hold_reason, data_crc FROM messages WHERE id = ?", (draft.id,)
            ).fetchone()
            if row is not None:
                head = draft._replace(data_crc=row[2])
                if row[0] == QueueState.HELD:
                    head = head._replace(state=row[0], hold_reason=row[1])
                _store_head(conn, head)
            return None, 0

        await self._write("update", msg.id, work)

    async def remove(self, msg_id: str) -> None:
        """Forget a message whose recipients are all delivered or bounced."""

        def work(conn: sqlite3.Connection) -> tuple[None, int]:
            return None, -conn.execute("DELETE FROM messages WHERE id = ?", (msg_id,)).rowcount

        await self._write("remove", msg_id, work)

    async def hold(
        self, ids: Sequence[str] | None = None, *, connection: str | None = None, reason: str
    ) -> int:
        """Hold the selected messages not held yet (a held one keeps its first reason)."""
        self._need_selector("hold", ids, connection)
        clauses = _where(ids, connection, "state != ?", (QueueState.HELD,))
        return await self._bulk(
            "hold", clauses, lambda h: h._replace(state=QueueState.HELD, hold_reason=reason)
        )

    async def release(
        self,
        ids: Sequence[str] | None = None,
        *,
        connection: str | None = None,
        reason: str | None = None,
    ) -> int:
        """Make held messages due now; with `reason`, only those held for that reason."""
        self._need_selector("release", ids, connection)
        params: tuple[Any, ...] = (QueueState.HELD,)
        if reason is None:
            condition = "state = ?"
        else:
            condition, params = "state = ? AND hold_reason = ?", (QueueState.HELD, reason)
        now, clauses = self._clock.now(), _where(ids, connection, condition, params)
        return await self._bulk(
            "release",
            clauses,
            lambda h: h._replace(state=QueueState.ACTIVE, next_attempt=now, hold_reason=""),
        )

    async def retry(self, ids: Sequence[str] | None = None) -> int:
        """Make deferred messages due now (all deferred ones when `ids` is None)."""
        now, clauses = self._clock.now(), _where(ids, None, "state = ?", (QueueState.DEFERRED,))
        return await self._bulk(
            "retry", clauses, lambda h: h._replace(state=QueueState.ACTIVE, next_attempt=now)
        )

    async def delete(
        self, ids: Sequence[str] | None = None, *, connection: str | None = None
    ) -> int:
        """Delete the selected messages without a bounce; the number deleted."""
        self._need_selector("delete", ids, connection)
        clauses = _where(ids, connection, "1", ())

        def work(conn: sqlite3.Connection) -> tuple[int, int]:
            n = sum(
                conn.execute(f"DELETE FROM messages WHERE {c}", p).rowcount  # noqa: S608
                for c, p in clauses
            )
            return n, -n

        return await self._write("delete", "", work)

    async def counts(self) -> dict[QueueState, int]:
        """Messages by state; also resets size() to the file's count (other processes
        may have deleted some) and updates the queue's gauges (size, oldest message)."""

        def work(conn: sqlite3.Connection) -> tuple[_Counts, int]:
            out, oldest, total = dict.fromkeys(QueueState, 0), {}, 0
            for state, n, received_at in conn.execute(_COUNTS):
                total += n
                if state in out:
                    out[QueueState(state)] = n
                    if isinstance(received_at, int | float):
                        oldest[QueueState(state)] = float(received_at)
            return (out, oldest), _Absolute(total)

        out, oldest = await self._write("counts", "", work)
        for state, n in out.items():
            self._metrics.queue_state(str(state), n, oldest.get(state), self._clock.now)
        return out

    # -------------------------------------------------------- reads

    async def get(self, msg_id: str, with_data: bool = True) -> QueuedMessage | None:
        def work(conn: sqlite3.Connection) -> QueuedMessage | None:
            found = _read_rows(conn, [msg_id], with_data)
            return found[0] if found else None

        return await self._read(work)

    async def had(self, msg_id: str, keep: float) -> bool:
        """Whether the spool holds `msg_id` or adopted it within `keep` seconds."""
        since = self._clock.now() - keep

        def work(conn: sqlite3.Connection) -> bool:
            if conn.execute("SELECT 1 FROM messages WHERE id = ?", (msg_id,)).fetchone():
                return True
            sql = "SELECT 1 FROM received WHERE id = ? AND at >= ?"
            return conn.execute(sql, (msg_id, since)).fetchone() is not None

        return await self._read(work)

    async def due(
        self, now: float, limit: int, exclude: Collection[str] = ()
    ) -> list[QueuedMessage]:
        """Active messages and deferred ones due by `now`, with text, oldest
        next_attempt first, leaving out `exclude` (those already in hand)."""
        if limit <= 0:
            return []
        skip = frozenset(exclude)

        def work(conn: sqlite3.Connection) -> list[QueuedMessage]:
            conn.execute("BEGIN")  # one snapshot for both queries
            try:
                params = (QueueState.ACTIVE, QueueState.DEFERRED, now, limit + len(skip))
                ids = [r[0] for r in conn.execute(_DUE_IDS, params) if r[0] not in skip]
                return _read_rows(conn, ids[:limit], True)
            finally:
                conn.execute("COMMIT")

        return await self._read(work)

    async def list(
        self,
        state: QueueState | None = None,
        connection: str | None = None,
        limit: int = 1000,
        after: str | None = None,
        *,
        where: MailFilter | None = None,
    ) -> list[QueuedMessage]:
        """Messages without their text, oldest first (ids sort by time): those `where`
        selects (of `state` and `connection` if given), only ids after `after`."""
        clause, args = where_of(_selection(where, state, connection), after)

        def work(conn: sqlite3.Connection) -> list[QueuedMessage]:
            sql = f"SELECT {_HEAD} FROM messages AS m WHERE {clause} ORDER BY m.id LIMIT ?"  # noqa: S608
            return [_decoded(row, None) for row in conn.execute(sql, (*args, limit))]

        return await self._read(work)

    async def count(
        self,
        state: QueueState | None = None,
        connection: str | None = None,
        *,
        where: MailFilter | None = None,
    ) -> int:
        """How many messages `list` would give without a limit (and without `after`)."""
        clause, args = where_of(_selection(where, state, connection))

        def work(conn: sqlite3.Connection) -> int:
            sql = f"SELECT count(*) FROM messages AS m WHERE {clause}"  # noqa: S608
            return int(conn.execute(sql, args).fetchone()[0])

        return await self._read(work)

    async def holding(self, ids: Sequence[str]) -> Ids:
        """Which of `ids` this spool holds (in the order given)."""

        def work(conn: sqlite3.Connection) -> Ids:
            found: set[str] = set()
            for clause, params in _where(ids, None, "1", ()):
                sql = f"SELECT id FROM messages WHERE {clause}"  # noqa: S608
                found.update(row[0] for row in conn.execute(sql, params))
            return [i for i in ids if i in found]

        return await self._read(work)

    async def shape(self, by: str, edges: Sequence[float], now: float, where: MailFilter) -> Shape:
        """The messages `where` selects counted per key and age bucket (`spool_select`:
        by a recipient's domain or the origin connection; age `now` - received, bucket i
        below `edges[i]` seconds, the last one past them), and per bucket."""
        clause, args = where_of(where)
        params = (*edges, now, *args)

        def work(conn: sqlite3.Connection) -> Shape:
            if by != "destination":  # each message counts in one row: add them up
                rows = _shape_rows(conn.execute(shape_sql(by, edges, clause), params))
                totals: dict[int, int] = {}
                for _, bucket, n in rows:
                    totals[bucket] = totals.get(bucket, 0) + n
                return rows, sorted(totals.items())
            conn.execute("BEGIN")  # one snapshot for both queries
            try:
                rows = _shape_rows(conn.execute(shape_sql(by, edges, clause), params))
                found = conn.execute(totals_sql(edges, clause), params).fetchall()
            finally:
                conn.execute("COMMIT")
            return rows, [(int(b), int(n)) for b, n in found]

        return await self._read(work)


def _shape_rows(found: Iterable[Any]) -> list[tuple[str, int, int]]:
    return [(str(key), int(bucket), int(n)) for key, bucket, n in found]


def _selection(
    where: MailFilter | None, state: QueueState | None, connection: str | None
) -> MailFilter:
    """`where` (every message when None) narrowed to `state` and `connection` if given."""
    found = where or MailFilter()
    if state is not None:
        found = found.within((str(state),))
    return found if connection is None else replace(found, connection=connection)
