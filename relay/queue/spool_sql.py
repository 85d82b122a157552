"""The spool's SQL plumbing: the schema, the statements, the connections.

Why SQLite in WAL mode rather than one file per message or an append-only log:
a transaction is atomic, so a record is absent or complete, never torn, and one
transaction can carry many messages, so one fsync (of the write-ahead log)
serves a whole batch: group commit. WAL lets readers (the scheduler's scans,
`ugem queue` in another process) run beside the single writer, and SQLite's
file locks plus a busy timeout coordinate the processes; an append-only log
would need its own index, compaction and locking for operators' edits.

Promise: the write connection (`_connect_writer`) has the schema in place and
runs in WAL mode with `synchronous=FULL` (in WAL mode only FULL makes a commit
durable; NORMAL is merely consistent); it never checkpoints by itself, and
`max_size_mb` caps the file through `PRAGMA max_page_count`. A new file's
directory is fsynced. The statements read and write the records of
`spool_records`, many ids at a time in chunks under SQLite's variable limit.
The `received` table keeps the ids of the messages other nodes handed over
(`Spool.adopt`) for a while after they leave `messages`, so a transfer retried
after a cut is recognised and not queued twice.

How it fails: `_spool_error` maps what fails below the spool to the project's
errors: no space (SQLITE_FULL, ENOSPC, or the `max_page_count` cap) is
`SpoolFullError` (452 4.3.1), anything else `SpoolError`; a file that will not
take WAL mode is a `SpoolError`."""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from relay.queue.message import QueuedMessage
from relay.queue.spool_records import _decoded, _Head
from ugem.core.config import MIB
from ugem.core.errors import SpoolError, SpoolFullError

BUSY_TIMEOUT = 5.0  # seconds a connection waits for another process's lock
_ID_CHUNK = 500  # ids per `IN (...)` clause (well under SQLite's variable limit)

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
CREATE TABLE IF NOT EXISTS received (
    id TEXT PRIMARY KEY,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS received_at ON received (at);
"""
_HEAD = "id, state, next_attempt, connection, hold_reason, envelope, data_crc"
_ROW = f"{_HEAD}, crc, data"
_SCAN = f"SELECT rowid, {_ROW} FROM messages ORDER BY rowid"  # noqa: S608 - fixed text
_SCAN_BACK = f"SELECT rowid, {_ROW} FROM messages WHERE rowid > ? ORDER BY rowid DESC"  # noqa: S608
_TO_QUARANTINE = f"INSERT INTO quarantine SELECT ?, ?, {_ROW} FROM messages WHERE rowid = ?"  # noqa: S608
_INSERT = "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_QUARANTINE = "INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_RECEIVED = "INSERT INTO received VALUES (?, ?)"
_PRUNE_RECEIVED = "DELETE FROM received WHERE at < ?"
_HAD = "SELECT 1 FROM messages WHERE id = ? UNION ALL SELECT 1 FROM received WHERE id = ?"
# Messages by state, with the oldest one's arrival (`received_at`): ids sort by arrival
# time (`new_queue_id`), so the oldest is the least id, found in the same scan of the
# covering index `messages_due` that counts them, then one lookup by id per state.
_COUNTS = """
SELECT g.state, g.n,
       CASE WHEN json_valid(m.envelope) THEN json_extract(m.envelope, '$.received_at') END
FROM (SELECT state, count(*) AS n, min(id) AS oldest FROM messages GROUP BY state) AS g
JOIN messages AS m ON m.id = g.oldest
"""
_DUE_IDS = """
SELECT id, next_attempt FROM messages WHERE state = ?
UNION ALL
SELECT id, next_attempt FROM messages WHERE state = ? AND next_attempt <= ?
ORDER BY next_attempt, id LIMIT ?
"""


# ---------------------------------------------------------------- records in the table


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


# ---------------------------------------------------------------- connections and errors


def _sqlite_code(exc: BaseException) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0)) & 0xFF


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


def _connect_writer(path: Path, max_size_mb: int) -> sqlite3.Connection:
    """The write connection, configured, with the schema in place."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _spool_error(exc) from exc
    is_new = not path.exists()
    conn = _connect(path)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise SpoolError(f"{path}: cannot use WAL mode (journal mode is {mode})")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA journal_size_limit={64 * MIB}")
        # Checkpoints copy the WAL into the database and fsync it: tens of
        # milliseconds that, run by a commit, every client of that batch
        # would wait for. The node's spool checkpoints on its reader thread.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        if max_size_mb:
            page = conn.execute("PRAGMA page_size").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count={max(1, max_size_mb * MIB // page)}")
        conn.executescript(_SCHEMA)
    except BaseException:
        conn.close()
        raise
    if is_new:
        _fsync_dir(path.parent)
    return conn
