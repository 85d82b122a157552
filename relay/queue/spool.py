"""The durable spool: every accepted message, on disk before its 250 is sent.

Promise: when `commit` returns, the message (envelope, text, checksum) is in a
committed SQLite transaction made with `synchronous=FULL`, so a `kill -9` or a
power cut cannot lose it; `open` after a crash finds every committed message
again, in the state it was last written in.

Why SQLite in WAL mode rather than one file per message or an append-only log:
a transaction is atomic, so a record is absent or complete, never torn, and one
transaction can carry many messages, so one fsync (of the write-ahead log)
serves a whole batch: group commit. WAL lets readers (the scheduler's scans,
`ugem queue` in another process) run beside the single writer, and SQLite's
file locks plus a busy timeout coordinate the processes; an append-only log
would need its own index, compaction and locking for operators' edits. In WAL
mode only `synchronous=FULL` makes a commit durable (NORMAL is merely
consistent).

How it works: one writer thread owns the write connection. Writes (commit,
update, remove, hold, ...) are queued to it; it takes everything pending (at
most `max_batch`), runs it in ONE transaction, commits, and then resolves each
caller's future on its event loop. Callers await behind `asyncio.shield`, so a
cancelled caller (client hang-up mid-DATA) never cancels the write itself.
Reads run on a separate connection in one reader thread. The event loop never
waits on the disk. WAL checkpoints (copying the log into the database, with
an fsync of its own) never run inside a commit: the node's spool runs a
PASSIVE checkpoint every second on the reader thread, which does not block
the writer, so no client's 250 waits for one.

How it fails: no space (SQLITE_FULL, ENOSPC, or the `max_size_mb` cap, which
is `PRAGMA max_page_count`) raises `SpoolFullError` (452 4.3.1) and clears as
soon as space is freed. A full disk (not the cap) also gives up the
`reserve_mb` kept in `queue.db.reserve` (`relay.queue.reserve`) and retries
the write once if it records rather than adds (a removal, an update, a hold),
so deliveries can still be recorded; from then on `commit` refuses new mail at
once and `health()` is false ("disk full"), until the checkpoint loop finds
room to make the reserve again. Any other failure raises `SpoolError` and
makes `health()` false with the reason until a write succeeds again (a write
refused on its own merits, such as a duplicate id, just fails). A failed batch
is retried op by op, so one bad op does not fail its neighbours, and every op
that is not written fails its caller: nothing is lost silently. Each record
carries CRC-32s of its envelope and its text; `open` moves a record that fails
them (or cannot be decoded) to the `quarantine` table and logs it at ERROR. A
file that cannot be opened or fails `PRAGMA quick_check` is renamed aside
(`queue.db.corrupt-<ts>`), a fresh one is created, and every record still
readable in the old file is copied into it. Neither is ever fatal. Reads do
not verify checksums again (`open` did); a row that cannot be decoded raises
`SpoolCorruptError`."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import queue
import sqlite3
import threading
import zlib
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

from relay.queue.message import QueuedMessage, QueueState
from relay.queue.reserve import Reserve
from ugem.core.clock import Clock
from ugem.core.config import MIB, Config
from ugem.core.errors import SpoolCorruptError, SpoolError, SpoolFullError, UsageError
from ugem.core.log import event
from ugem.core.metrics import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")
BUSY_TIMEOUT = 5.0  # seconds a connection waits for another process's lock
_ID_CHUNK = 500  # ids per `IN (...)` clause (well under SQLite's variable limit)
_CORRUPT_CODES = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    next_attempt REAL NOT NULL,
    connection TEXT NOT NULL,
    hold_reason TEXT NOT NULL,
    envelope TEXT NOT NULL,
    data_crc INTEGER NOT NULL,
    crc INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_due ON messages (state, next_attempt, id);
CREATE INDEX IF NOT EXISTS messages_connection ON messages (connection);
CREATE TABLE IF NOT EXISTS quarantine (
    quarantined_at REAL NOT NULL,
    reason TEXT NOT NULL,
    id, state, next_attempt, connection, hold_reason, envelope, data_crc, crc, data
);
"""
_HEAD = "id, state, next_attempt, connection, hold_reason, envelope, data_crc"
_ROW = f"{_HEAD}, crc, data"
# The fields kept as JSON in `envelope`; the others are columns (data is a column too).
_ENVELOPE = (
    *("sender", "rcpts", "original_rcpts", "size"),
    *("client_ip", "received_at", "attempts", "last_error"),
)
_SCAN = f"SELECT rowid, {_ROW} FROM messages ORDER BY rowid"  # noqa: S608 - fixed text
_SCAN_BACK = f"SELECT rowid, {_ROW} FROM messages WHERE rowid > ? ORDER BY rowid DESC"  # noqa: S608
_TO_QUARANTINE = f"INSERT INTO quarantine SELECT ?, ?, {_ROW} FROM messages WHERE rowid = ?"  # noqa: S608
_INSERT = "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_QUARANTINE = "INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_DUE_IDS = """
SELECT id, next_attempt FROM messages WHERE state = ?
UNION ALL
SELECT id, next_attempt FROM messages WHERE state = ? AND next_attempt <= ?
ORDER BY next_attempt, id LIMIT ?
"""


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


@dataclass
class RecoveryReport:
    messages: int  # messages in the spool after opening
    quarantined: int  # records moved to the quarantine table by this open
    moved_aside: str | None  # where an unusable database file was moved, if it was


# ---------------------------------------------------------------- records


class _Head(NamedTuple):
    """A row without its text; `crc()` covers these fields (`data_crc` covers the text)."""

    id: str
    state: str
    next_attempt: float
    connection: str
    hold_reason: str
    envelope: str  # JSON of the _ENVELOPE fields
    data_crc: int

    def crc(self) -> int:
        return zlib.crc32(json.dumps(list(self), separators=(",", ":")).encode())


def _head_of(msg: QueuedMessage) -> _Head:
    """A snapshot of the message's envelope, taken on the caller's thread (data_crc 0)."""
    fields = {k: getattr(msg, k) for k in _ENVELOPE}
    envelope = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    state, next_attempt = str(msg.state), float(msg.next_attempt)
    return _Head(msg.id, state, next_attempt, msg.connection, msg.hold_reason, envelope, 0)


def _decode(head: Sequence[Any], data: bytes | None) -> QueuedMessage:
    """A QueuedMessage from the head columns; ValueError/KeyError/TypeError if malformed."""
    msg_id, state, next_attempt, connection, hold_reason, envelope = head[:6]
    env = json.loads(envelope)
    if not all(isinstance(v, str) for v in (msg_id, connection, hold_reason)):
        raise TypeError("id, connection and hold_reason must be text")
    return QueuedMessage(
        id=msg_id,
        sender=str(env["sender"]),
        rcpts=[str(r) for r in env["rcpts"]],
        data=data,
        size=int(env["size"]),
        connection=connection,
        client_ip=str(env["client_ip"]),
        received_at=float(env["received_at"]),
        state=QueueState(state),
        attempts=int(env["attempts"]),
        next_attempt=float(next_attempt),
        last_error=str(env["last_error"]),
        hold_reason=hold_reason,
        original_rcpts=[str(r) for r in env["original_rcpts"]],
    )


def _fault(row: Sequence[Any]) -> str | None:
    """Why a full row (`_ROW` columns) is not a sound record, or None if it is."""
    try:
        _decode(row, None)
        head = _Head(*row[:7])
        if not isinstance(row[8], bytes) or zlib.crc32(row[8]) != head.data_crc:
            return "message text fails its checksum"
        if head.crc() != row[7]:
            return "envelope fails its checksum"
    except (ValueError, KeyError, TypeError) as exc:
        return f"record cannot be decoded: {exc}"
    return None


def _store_head(conn: sqlite3.Connection, head: _Head) -> None:
    sql = (
        "UPDATE messages SET state = ?, next_attempt = ?, connection = ?, hold_reason = ?, "
        "envelope = ?, crc = ? WHERE id = ?"
    )
    conn.execute(sql, (*head[1:6], head.crc(), head.id))


Clauses = list[tuple[str, tuple[Any, ...]]]  # WHERE clauses with their parameters


def _where(
    ids: Sequence[str] | None, connection: str | None, condition: str, params: tuple[Any, ...]
) -> Clauses:
    """WHERE clauses (one per chunk of ids) selecting by ids, connection and condition."""
    base, args = [condition], list(params)
    if connection is not None:
        base.append("connection = ?")
        args.append(connection)
    if ids is None:
        return [(" AND ".join(base), tuple(args))]
    ids, out = list(ids), []
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK]
        marks = ", ".join("?" * len(chunk))
        out.append((" AND ".join([*base, f"id IN ({marks})"]), (*args, *chunk)))
    return out


def _rewrite(
    conn: sqlite3.Connection, clause: str, params: tuple[Any, ...], change: Callable[[_Head], _Head]
) -> int:
    """Apply `change` to the head of every selected row; the number of rows."""
    rows = conn.execute(f"SELECT {_HEAD} FROM messages WHERE {clause}", params).fetchall()  # noqa: S608
    for row in rows:
        _store_head(conn, change(_Head(*row)))
    return len(rows)


def _read_rows(
    conn: sqlite3.Connection, ids: Sequence[str], with_data: bool
) -> list[QueuedMessage]:
    """The messages with these ids, in the order of `ids` (missing ones left out)."""
    found: dict[str, QueuedMessage] = {}
    columns = f"{_HEAD}, data" if with_data else _HEAD
    for clause, params in _where(ids, None, "1", ()):
        sql = f"SELECT {columns} FROM messages WHERE {clause}"  # noqa: S608
        for row in conn.execute(sql, params):
            found[row[0]] = _decoded(row, row[7] if with_data else None)
    return [found[i] for i in ids if i in found]


def _decoded(row: Sequence[Any], data: bytes | None) -> QueuedMessage:
    try:
        return _decode(row, data)
    except (ValueError, KeyError, TypeError) as exc:
        raise SpoolCorruptError(f"queue id {row[0]!r} cannot be decoded: {exc}") from exc


# ---------------------------------------------------------------- sqlite plumbing


def _sqlite_code(exc: BaseException) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0)) & 0xFF


def _is_corrupt(exc: BaseException) -> bool:
    return isinstance(exc, _Unusable) or _sqlite_code(exc) in _CORRUPT_CODES


def _spool_error(exc: BaseException) -> SpoolError:
    """The project's error for a failure below the spool (a SpoolError stays as it is)."""
    if isinstance(exc, SpoolError):
        return exc
    full = _sqlite_code(exc) == sqlite3.SQLITE_FULL or (
        isinstance(exc, OSError) and exc.errno == errno.ENOSPC
    )
    err = SpoolFullError(f"spool is full: {exc}") if full else SpoolError(f"spool failed: {exc}")
    err.__cause__ = exc
    return err


class _Unusable(Exception):
    """The database file is corrupt as a whole (quick_check failed)."""


class _Absolute(int):
    """A size change that sets the message count instead of adding to it."""


CHECKPOINT_INTERVAL = 1.0  # seconds between WAL checkpoints (off the commit path)


def _connect(path: Path | str, *, uri: bool = False) -> sqlite3.Connection:
    return sqlite3.connect(
        path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False, uri=uri
    )


def _checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _fsync_dir(directory: Path) -> None:
    """Make a file's creation or rename durable (best effort: some filesystems refuse)."""
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------- the writer thread


Work = Callable[[sqlite3.Connection], tuple[T, int]]  # (result, change in message count)


@dataclass
class _Op(Generic[T]):
    what: str  # "commit", "hold", ... for logs
    queue_id: str  # "" for bulk operations
    work: Work[T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop


def _settle(op: _Op[Any], value: Any, exc: BaseException | None) -> None:
    """Resolve the op's future on its own loop (from the writer thread)."""

    def resolve() -> None:
        if op.future.done():
            return
        if exc is None:
            op.future.set_result(value)
        else:
            op.future.set_exception(exc)

    with suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
        op.loop.call_soon_threadsafe(resolve)


class _Writer:
    """The one thread that writes: group commit of everything queued to it."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        metrics: Metrics,
        max_batch: int,
        size: int,
        on_full: Callable[[], bool] = lambda: False,
    ) -> None:
        self.size = size  # messages in the spool; changed only by this thread
        self.failure = ""  # why the last write failed ("" after a success or a full spool)
        self._conn, self._metrics, self._max_batch = conn, metrics, max_batch
        self._on_full = on_full  # out of space: True when it freed some (try once more)
        self._queue: queue.SimpleQueue[_Op[Any] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="spool-writer", daemon=True)
        self._thread.start()

    def submit(self, op: _Op[Any]) -> None:
        self._queue.put(op)

    def stop(self) -> None:
        """Finish what is queued, close the connection, end the thread (blocks)."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        try:
            stop = False
            while not stop:
                ops, stop = self._take()
                if ops:
                    self._execute(ops)
        finally:
            with suppress(sqlite3.Error):
                self._conn.close()

    def _take(self) -> tuple[list[_Op[Any]], bool]:
        """Wait for one op, then take all that are pending (up to max_batch); stop seen?"""
        item = self._queue.get()
        ops: list[_Op[Any]] = []
        while item is not None:
            ops.append(item)
            if len(ops) >= self._max_batch:
                return ops, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return ops, False
        return ops, True

    def _execute(self, ops: list[_Op[Any]]) -> None:
        try:
            values, size = self._transaction(ops)
        except Exception as exc:  # every failure reaches a caller; the thread lives on
            if len(ops) > 1:  # isolate the op at fault: the others may well succeed
                for op in ops:
                    self._execute([op])
            elif self._freed_space(ops[0], exc):
                self._execute(ops)  # once more: the reserve is spent, it cannot free twice
            else:
                self._fail(ops[0], exc)
            return
        self.size, self.failure = size, ""
        self._metrics.fsync_batch.observe(len(ops))
        for op, value in zip(ops, values, strict=True):
            _settle(op, value, None)

    def _freed_space(self, op: _Op[Any], exc: Exception) -> bool:
        """Out of space: the spool gives up its reserve; may this op (not new mail) retry?"""
        if not isinstance(_spool_error(exc), SpoolFullError):
            return False
        freed = self._on_full()
        return freed and op.what != "commit"

    def _transaction(self, ops: list[_Op[Any]]) -> tuple[list[Any], int]:
        """Run every op in one transaction and commit (one fsync); values and new size."""
        conn, size, values = self._conn, self.size, []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                value, change = op.work(conn)
                size = change if isinstance(change, _Absolute) else size + change
                values.append(value)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may already have rolled back (SQLITE_FULL)
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        return values, size

    def _fail(self, op: _Op[Any], exc: Exception) -> None:
        err = _spool_error(exc)
        kind = "write"
        if isinstance(err, SpoolFullError):
            kind = "full"
        elif _sqlite_code(exc) == sqlite3.SQLITE_CONSTRAINT:
            kind = "rejected"  # this op's fault (a duplicate id), not the storage's
        if kind == "write":
            self.failure = str(err)
        self._metrics.spool_errors.labels(kind=kind).inc()
        level = logging.ERROR if kind == "write" else logging.WARNING
        event(
            log,
            "spool_write_failed",
            level,
            op=op.what,
            queue_id=op.queue_id,
            kind=kind,
            error=str(exc),
        )
        _settle(op, None, err)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark an exception as seen when the caller was cancelled and will not read it."""
    if not future.cancelled():
        future.exception()


# ---------------------------------------------------------------- opening and recovery


class _Opener:
    """Opens the database file, checks it, and repairs what it can (blocking; in a thread)."""

    def __init__(self, path: Path, clock: Clock, max_size_mb: int) -> None:
        self.path, self.clock, self.max_size_mb = path, clock, max_size_mb

    def connect(self) -> sqlite3.Connection:
        """The write connection, configured, with the schema in place."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _spool_error(exc) from exc
        is_new = not self.path.exists()
        conn = _connect(self.path)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise SpoolError(f"{self.path}: cannot use WAL mode (journal mode is {mode})")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA journal_size_limit={64 * MIB}")
            # Checkpoints copy the WAL into the database and fsync it: tens of
            # milliseconds that, run by a commit, every client of that batch
            # would wait for. The node's spool checkpoints on its reader thread.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            if self.max_size_mb:
                page = conn.execute("PRAGMA page_size").fetchone()[0]
                conn.execute(f"PRAGMA max_page_count={max(1, self.max_size_mb * MIB // page)}")
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        if is_new:
            _fsync_dir(self.path.parent)
        return conn

    def recover(self) -> tuple[sqlite3.Connection, RecoveryReport]:
        """Open with checks: quarantine bad records, move an unusable file aside."""
        conn: sqlite3.Connection | None = None
        try:
            conn = self.connect()
            self._quick_check(conn)
            quarantined = self._quarantine(conn)
            moved = None
        except (sqlite3.DatabaseError, _Unusable) as exc:
            if conn is not None:
                conn.close()
            if not _is_corrupt(exc):
                raise
            aside = self._move_aside(str(exc))
            conn, moved = self.connect(), str(aside)
            quarantined = self._salvage(aside, conn)
        messages = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        return conn, RecoveryReport(messages, quarantined, moved)

    @staticmethod
    def _quick_check(conn: sqlite3.Connection) -> None:
        result = [r[0] for r in conn.execute("PRAGMA quick_check")]
        if result != ["ok"]:
            raise _Unusable("quick_check: " + "; ".join(map(str, result[:5])))

    def _quarantine(self, conn: sqlite3.Connection) -> int:
        """Move every row that fails its checks to the quarantine table."""
        rows = conn.execute(_SCAN)
        bad = [(r[0], r[1], fault) for r in rows if (fault := _fault(r[1:])) is not None]
        if not bad:
            return 0
        now = self.clock.now()
        conn.execute("BEGIN IMMEDIATE")
        for rowid, msg_id, fault in bad:
            conn.execute(_TO_QUARANTINE, (now, fault, rowid))
            conn.execute("DELETE FROM messages WHERE rowid = ?", (rowid,))
            event(log, "spool_quarantined", logging.ERROR, queue_id=msg_id, reason=fault)
        conn.execute("COMMIT")
        return len(bad)

    def _move_aside(self, reason: str) -> Path:
        """Rename the database and its -wal/-shm to queue.db.corrupt-<ts>[.n]."""
        base = f"{self.path.name}.corrupt-{int(self.clock.now())}"
        aside, n = self.path.with_name(base), 0
        while aside.exists():
            n += 1
            aside = self.path.with_name(f"{base}.{n}")
        try:
            for suffix in ("", "-wal", "-shm"):
                source = self.path.with_name(self.path.name + suffix)
                if source.exists():
                    source.rename(aside.with_name(aside.name + suffix))
        except OSError as exc:
            raise _spool_error(exc) from exc
        _fsync_dir(self.path.parent)
        event(
            log,
            "spool_moved_aside",
            logging.ERROR,
            path=str(self.path),
            moved_to=str(aside),
            reason=reason,
        )
        return aside

    def _salvage(self, aside: Path, conn: sqlite3.Connection) -> int:
        """Copy every record still readable from the file moved aside; bad ones quarantined."""
        good, bad = 0, 0
        try:
            old = _connect(aside.resolve().as_uri() + "?mode=ro", uri=True)
        except sqlite3.Error:
            return 0
        with closing(old):
            conn.execute("BEGIN IMMEDIATE")
            for row in _readable_rows(old):
                fault = _fault(row)
                if fault is None:
                    with suppress(sqlite3.IntegrityError):  # the same id twice
                        good += conn.execute(_INSERT, row).rowcount
                else:
                    bad += 1
                    conn.execute(_INSERT_QUARANTINE, (self.clock.now(), fault, *row))
            conn.execute("COMMIT")
        event(log, "spool_salvaged", logging.ERROR, path=str(aside), messages=good, quarantined=bad)
        return bad


def _readable_rows(conn: sqlite3.Connection) -> Iterator[tuple[Any, ...]]:
    """Rows of a damaged table: forward until an error, then backward to meet it."""
    last = -1
    try:
        for row in conn.execute(_SCAN):
            last = row[0]
            yield tuple(row[1:])
    except sqlite3.Error:
        pass
    else:
        return
    with suppress(sqlite3.Error):
        for row in conn.execute(_SCAN_BACK, (last,)):
            yield tuple(row[1:])


# ---------------------------------------------------------------- the spool


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
            conn = opener.connect()
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
        may have deleted some) and updates the queue-size gauge."""

        def work(conn: sqlite3.Connection) -> tuple[dict[QueueState, int], int]:
            out, total = dict.fromkeys(QueueState, 0), 0
            for state, n in conn.execute("SELECT state, count(*) FROM messages GROUP BY state"):
                total += n
                if state in out:
                    out[QueueState(state)] = n
            return out, _Absolute(total)

        out = await self._write("counts", "", work)
        for state, n in out.items():
            self._metrics.queue_size.labels(state=str(state)).set(n)
        return out

    # -------------------------------------------------------- reads

    async def get(self, msg_id: str, with_data: bool = True) -> QueuedMessage | None:
        def work(conn: sqlite3.Connection) -> QueuedMessage | None:
            found = _read_rows(conn, [msg_id], with_data)
            return found[0] if found else None

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
        self, state: QueueState | None = None, connection: str | None = None, limit: int = 1000
    ) -> list[QueuedMessage]:
        """Messages without their text, oldest first (ids sort by time)."""
        condition, params = ("state = ?", (str(state),)) if state is not None else ("1", ())
        ((clause, args),) = _where(None, connection, condition, params)

        def work(conn: sqlite3.Connection) -> list[QueuedMessage]:
            sql = f"SELECT {_HEAD} FROM messages WHERE {clause} ORDER BY id LIMIT ?"  # noqa: S608
            return [_decoded(row, None) for row in conn.execute(sql, (*args, limit))]

        return await self._read(work)
