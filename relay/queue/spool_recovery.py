"""Recovery when the node's spool opens: check the file, repair what can be repaired.

Promise: `open` after a crash finds every committed message again, in the state
it was last written in, and damage is never fatal. Each record carries CRC-32s
of its envelope and its text (`spool_records`); a record that fails them (or
cannot be decoded) is moved to the `quarantine` table and logged at ERROR. A
file that cannot be opened or fails `PRAGMA quick_check` is renamed aside
(`queue.db.corrupt-<ts>`, with its -wal and -shm), a fresh one is created, and
every record still readable in the old file is copied into it (the bad ones
into quarantine). `RecoveryReport` says what was found and done.

How it fails: anything but a damaged file (a lock held too long, no permission,
no room to rename) is raised: an SQLite error as it is, for `Spool.open` to map,
an OSError as a `SpoolError`. Everything here blocks: it runs in a thread."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay.queue.spool_records import _fault
from relay.queue.spool_sql import (
    _INSERT,
    _INSERT_QUARANTINE,
    _SCAN,
    _SCAN_BACK,
    _TO_QUARANTINE,
    _connect,
    _connect_writer,
    _fsync_dir,
    _spool_error,
    _sqlite_code,
)
from ugem.core.clock import Clock
from ugem.core.log import event

log = logging.getLogger(__name__)

_CORRUPT_CODES = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


@dataclass
class RecoveryReport:
    messages: int  # messages in the spool after opening
    quarantined: int  # records moved to the quarantine table by this open
    moved_aside: str | None  # where an unusable database file was moved, if it was


class _Unusable(Exception):
    """The database file is corrupt as a whole (quick_check failed)."""


def _is_corrupt(exc: BaseException) -> bool:
    return isinstance(exc, _Unusable) or _sqlite_code(exc) in _CORRUPT_CODES


class _Opener:
    """Opens the database file, checks it, and repairs what it can (blocking; in a thread)."""

    def __init__(self, path: Path, clock: Clock, max_size_mb: int) -> None:
        self.path, self.clock, self.max_size_mb = path, clock, max_size_mb

    def recover(self) -> tuple[sqlite3.Connection, RecoveryReport]:
        """Open with checks: quarantine bad records, move an unusable file aside."""
        conn: sqlite3.Connection | None = None
        try:
            conn = _connect_writer(self.path, self.max_size_mb)
            self._quick_check(conn)
            quarantined = self._quarantine(conn)
            moved = None
        except (sqlite3.DatabaseError, _Unusable) as exc:
            if conn is not None:
                conn.close()
            if not _is_corrupt(exc):
                raise
            aside = self._move_aside(str(exc))
            conn, moved = _connect_writer(self.path, self.max_size_mb), str(aside)
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
