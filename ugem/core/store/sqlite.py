"""The embedded registry store: one SQLite file in the node's data dir.

The file holds the connections (JSON text, see `ugem.core.store.codec`), a
`domains` table whose primary key makes a domain belong to one connection at
most, the append-only audit log (hash-chained: `seq`, `prev`, `hash`, with the
head in `audit_head`), the `docs` table of JSON documents by kind and id, the
`incidents` table (numbered by AUTOINCREMENT; a partial unique index keeps one
incident that is not closed per connection), the capped journals (`journal`,
numbered per kind by `journal_head`; an append deletes what falls beyond the
cap in its own transaction), a `meta` row with the version and the one row of
`generation` (absent until a registry writes it). A file made by
an older version gets the new columns and tables on open, and its audit rows
are sealed into the chain. Every write is one `BEGIN IMMEDIATE` transaction
that also bumps the version, so a node and the CLI (or several processes) can
share the file: WAL lets readers go on while one writer commits,
`busy_timeout` makes a writer wait its turn instead of failing,
`synchronous=FULL` makes a committed change survive a power cut.

Every method runs inline on the caller's thread, without a thread hop:
`generation()` is two primary-key reads; the writes are rare admin operations
of a millisecond or so. The SMTP path asks at every MAIL FROM whether the
store changed, and under load even that read cost the gateway an eighth of
its throughput (a read transaction's locks and system calls, each letting
another thread take the GIL from the event loop): `change_mark()` answers
from the files' inode, size and modification time (two stat calls), the way
Postfix notices a changed lookup table, and the read is done only when the
mark moved. A write less than `RACY_NS` old gives no mark (None): a later
write within the same tick of a coarse file-system clock (FAT's is 2 s) could
leave all three the same, so such a mark could hide it (git's "racy clean"). A store
object is used from the thread that opened it (the event loop's). Errors of
sqlite3 are raised as `StoreError` naming the file; conflicts as
`ConflictError`; a damaged stored connection as `StoreError`.
"""

from __future__ import annotations

import builtins
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ugem.core.errors import StoreError
from ugem.core.model import Connection
from ugem.core.store.base import GENESIS, INCIDENT_CLOSED, AuditEntry, AuditRecord, IncidentRecord
from ugem.core.store.codec import (
    AuditLogReader,
    check_limit,
    decode_connection,
    doc_conflict,
    domain_conflict,
    encode_connection,
    id_conflict,
    incident_final,
    no_incident,
    seal,
)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000
SCHEMA_VERSION = 2
RACY_NS = 2_000_000_000  # a write this recent gives no change mark (see the module docstring)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('version', 0)",
    "CREATE TABLE IF NOT EXISTS connections (id TEXT PRIMARY KEY, data TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS domains (domain TEXT PRIMARY KEY, conn_id TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS domains_by_conn ON domains (conn_id)",
    "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL,"
    " actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, reason TEXT NOT NULL,"
    " details TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS audit_by_target ON audit (target, seq)",
    "CREATE TABLE IF NOT EXISTS audit_head (one INTEGER PRIMARY KEY CHECK (one = 1),"
    " seq INTEGER NOT NULL, hash TEXT NOT NULL)",
    f"INSERT OR IGNORE INTO audit_head (one, seq, hash) VALUES (1, 0, '{GENESIS}')",  # noqa: S608
    "CREATE TABLE IF NOT EXISTS docs (kind TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL,"
    " PRIMARY KEY (kind, id))",
    "CREATE TABLE IF NOT EXISTS incidents (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " connection TEXT NOT NULL, state TEXT NOT NULL, rev INTEGER NOT NULL, data TEXT NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS incidents_not_closed ON incidents (connection)"
    f" WHERE state != '{INCIDENT_CLOSED}'",
    "CREATE TABLE IF NOT EXISTS journal (kind TEXT NOT NULL, seq INTEGER NOT NULL,"
    " data TEXT NOT NULL, PRIMARY KEY (kind, seq))",
    "CREATE TABLE IF NOT EXISTS journal_head (kind TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS generation (one INTEGER PRIMARY KEY CHECK (one = 1),"
    " id TEXT NOT NULL)",
)
_AUDIT_COLUMNS = ("before", "after", "prev", "hash")  # added in schema version 2
_VERSION = "SELECT value FROM meta WHERE key = 'version'"
_BUMP = "UPDATE meta SET value = value + 1 WHERE key = 'version'"
_GENERATION = f"SELECT (SELECT id FROM generation WHERE one = 1), ({_VERSION})"  # noqa: S608
_SET_GENERATION = "INSERT OR REPLACE INTO generation (one, id) VALUES (1, ?)"
_FIELDS = "seq, prev, hash, ts, actor, action, target, reason, details, before, after"
_AUDIT_ADD = f"INSERT INTO audit ({_FIELDS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
_AUDIT_NEWEST = (
    f"SELECT {_FIELDS} FROM audit WHERE seq < ? AND (? IS NULL OR target = ?)"  # noqa: S608
    " ORDER BY seq DESC LIMIT ?"
)
_AUDIT_CHAIN = f"SELECT {_FIELDS} FROM audit ORDER BY seq LIMIT ? OFFSET ?"  # noqa: S608
_HEAD = "SELECT seq, hash FROM audit_head WHERE one = 1"
_SET_HEAD = "UPDATE audit_head SET seq = ?, hash = ? WHERE one = 1"
_NO_SEQ = 1 << 62  # "before" when none is given: newer than any record
_INCIDENT = "SELECT id, connection, state, rev, data FROM incidents"
_INCIDENTS = (
    f"{_INCIDENT} WHERE (? IS NULL OR state = ?) AND (? IS NULL OR connection = ?)"
    " ORDER BY id DESC LIMIT ?"
)
_NOT_CLOSED = f"{_INCIDENT} WHERE connection = ? AND state != '{INCIDENT_CLOSED}'"
_JOURNAL_NEXT = (
    "INSERT INTO journal_head (kind, seq) VALUES (?, 1)"
    " ON CONFLICT (kind) DO UPDATE SET seq = seq + 1 RETURNING seq"
)
_JOURNAL_NEWEST = (
    "SELECT seq, data FROM journal WHERE kind = ? AND seq < ? ORDER BY seq DESC LIMIT ?"
)


class SqliteStore(AuditLogReader):
    local = True  # a file of this machine, called without yielding (Store.local)

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._wal = Path(f"{self.path}-wal")  # what change_mark looks at, beside the file
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"sqlite store {self.path}: cannot open: {exc}") from exc
        try:
            self._setup()
        except StoreError:
            self._db.close()
            raise

    def _setup(self) -> None:
        with self._errors():
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")

        def create(db: sqlite3.Connection) -> None:
            for statement in _SCHEMA:
                db.execute(statement)
            _upgrade_audit(db)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

        self._write(create)

    def _errors(self) -> AbstractContextManager[None]:
        return _errors(self.path)

    def _write(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """Run `change` in one immediate transaction; roll back if it raises."""
        db = self._db
        with self._errors():
            db.execute("BEGIN IMMEDIATE")
            try:
                result = change(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return result

    async def add(self, conn: Connection) -> None:
        def change(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM connections WHERE id = ?", (conn.id,)).fetchone():
                raise id_conflict(conn.id)
            _save(db, conn)

        self._write(change)

    async def put(self, conn: Connection) -> None:
        self._write(lambda db: _save(db, conn))

    async def get(self, conn_id: str) -> Connection | None:
        with self._errors():
            row = self._db.execute(
                "SELECT data FROM connections WHERE id = ?", (conn_id,)
            ).fetchone()
        return None if row is None else decode_connection(row[0], self._where(conn_id))

    async def list(self) -> list[Connection]:
        with self._errors():
            rows = self._db.execute("SELECT id, data FROM connections ORDER BY id").fetchall()
        return [decode_connection(data, self._where(ident)) for ident, data in rows]

    async def delete(self, conn_id: str) -> bool:
        def change(db: sqlite3.Connection) -> bool:
            gone = db.execute("DELETE FROM connections WHERE id = ?", (conn_id,)).rowcount > 0
            if gone:
                db.execute("DELETE FROM domains WHERE conn_id = ?", (conn_id,))
                db.execute(_BUMP)
            return gone

        return self._write(change)

    async def version(self) -> int:
        with self._errors():
            row = self._db.execute(_VERSION).fetchone()
        return int(row[0]) if row else 0

    def change_mark(self) -> tuple[int, ...] | None:
        """The database's and its WAL's (inode, size, mtime): equal while no process wrote the
        store; None while the newest write is under RACY_NS old, or a file cannot be read."""
        try:
            db, wal = _file_mark(self.path), _file_mark(self._wal)
        except OSError:
            return None
        newest = max(db[2], wal[2])  # the mtimes
        return None if time.time_ns() - newest < RACY_NS else db + wal

    async def generation(self) -> tuple[str | None, int]:
        with self._errors():
            generation, version = self._db.execute(_GENERATION).fetchone()
        return (None if generation is None else str(generation)), int(version or 0)

    async def init_generation(self, generation: str) -> str:
        def change(db: sqlite3.Connection) -> str:
            sql = "INSERT OR IGNORE INTO generation (one, id) VALUES (1, ?)"
            db.execute(sql, (generation,))
            return str(db.execute("SELECT id FROM generation WHERE one = 1").fetchone()[0])

        return self._write(change)

    async def restore_registry(
        self, generation: str, min_version: int, conns: builtins.list[Connection]
    ) -> int:
        def change(db: sqlite3.Connection) -> int:
            _check_owners(db, conns)
            for conn in conns:
                db.execute("DELETE FROM domains WHERE conn_id = ?", (conn.id,))
            for conn in conns:
                _save(db, conn)
            db.execute(_SET_GENERATION, (generation,))
            db.execute(_BUMP)
            sql = "UPDATE meta SET value = MAX(value, ?) WHERE key = 'version'"
            db.execute(sql, (min_version,))
            return int(db.execute(_VERSION).fetchone()[0])

        return self._write(change)

    async def audit(self, entry: AuditEntry) -> None:
        def change(db: sqlite3.Connection) -> None:
            _append(db, entry)
            db.execute(_BUMP)

        self._write(change)

    async def audit_records(
        self, target: str | None = None, limit: int = 100, before: int | None = None
    ) -> builtins.list[AuditRecord]:
        args = (_NO_SEQ if before is None else before, target, target, check_limit(limit))
        return self._records(_AUDIT_NEWEST, args)

    async def audit_chain(self, offset: int = 0, limit: int = 1000) -> builtins.list[AuditRecord]:
        return self._records(_AUDIT_CHAIN, (check_limit(limit), offset))

    async def audit_head(self) -> tuple[int, str]:
        with self._errors():
            row = self._db.execute(_HEAD).fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def _records(self, sql: str, args: tuple[object, ...]) -> builtins.list[AuditRecord]:
        with self._errors():
            rows = self._db.execute(sql, args).fetchall()
        try:
            return [_record(row) for row in rows]
        except (ValueError, TypeError) as exc:
            raise StoreError(
                f"sqlite store {self.path}: an audit record is damaged: {exc}"
            ) from exc

    async def doc_add(self, kind: str, doc_id: str, data: str) -> None:
        def change(db: sqlite3.Connection) -> None:
            found = db.execute("SELECT 1 FROM docs WHERE kind = ? AND id = ?", (kind, doc_id))
            if found.fetchone():
                raise doc_conflict(kind, doc_id)
            db.execute("INSERT INTO docs (kind, id, data) VALUES (?, ?, ?)", (kind, doc_id, data))

        self._write(change)

    async def doc_put(self, kind: str, doc_id: str, data: str) -> None:
        sql = "INSERT OR REPLACE INTO docs (kind, id, data) VALUES (?, ?, ?)"
        self._write(lambda db: db.execute(sql, (kind, doc_id, data)))

    async def doc_get(self, kind: str, doc_id: str) -> str | None:
        with self._errors():
            row = self._db.execute(
                "SELECT data FROM docs WHERE kind = ? AND id = ?", (kind, doc_id)
            ).fetchone()
        return None if row is None else str(row[0])

    async def doc_list(self, kind: str) -> builtins.list[tuple[str, str]]:
        with self._errors():
            rows = self._db.execute(
                "SELECT id, data FROM docs WHERE kind = ? ORDER BY id", (kind,)
            ).fetchall()
        return [(str(i), str(d)) for i, d in rows]

    async def incident_open(self, connection: str, data: str) -> tuple[IncidentRecord, bool]:
        def change(db: sqlite3.Connection) -> tuple[IncidentRecord, bool]:
            row = db.execute(_NOT_CLOSED, (connection,)).fetchone()
            if row is not None:
                return _incident(row), False
            sql = "INSERT INTO incidents (connection, state, rev, data) VALUES (?, 'open', 1, ?)"
            ident = db.execute(sql, (connection, data)).lastrowid
            return IncidentRecord(int(ident or 0), connection, "open", 1, data), True

        return self._write(change)

    async def incident_update(self, record: IncidentRecord) -> bool:
        def change(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT state, rev FROM incidents WHERE id = ?", (record.id,))
            found = row.fetchone()
            if found is None:
                raise no_incident(record.id)
            if int(found[1]) != record.rev:
                return False
            if found[0] == INCIDENT_CLOSED and record.state != INCIDENT_CLOSED:
                raise incident_final(record.id)
            db.execute(
                "UPDATE incidents SET state = ?, data = ?, rev = rev + 1 WHERE id = ?",
                (record.state, record.data, record.id),
            )
            return True

        return self._write(change)

    async def incident_get(self, incident_id: int) -> IncidentRecord | None:
        with self._errors():
            row = self._db.execute(f"{_INCIDENT} WHERE id = ?", (incident_id,)).fetchone()
        return None if row is None else _incident(row)

    async def incident_list(
        self, state: str | None = None, connection: str | None = None, limit: int = 100
    ) -> builtins.list[IncidentRecord]:
        args = (state, state, connection, connection, check_limit(limit))
        with self._errors():
            rows = self._db.execute(_INCIDENTS, args).fetchall()
        return [_incident(row) for row in rows]

    async def journal_append(self, kind: str, data: str, cap: int) -> tuple[int, int]:
        check_limit(cap, "cap")

        def change(db: sqlite3.Connection) -> tuple[int, int]:
            seq = int(db.execute(_JOURNAL_NEXT, (kind,)).fetchall()[0][0])
            db.execute("INSERT INTO journal (kind, seq, data) VALUES (?, ?, ?)", (kind, seq, data))
            old = db.execute("DELETE FROM journal WHERE kind = ? AND seq <= ?", (kind, seq - cap))
            return seq, old.rowcount

        return self._write(change)

    async def journal_list(
        self, kind: str, limit: int = 100, before: int | None = None
    ) -> builtins.list[tuple[int, str]]:
        args = (kind, _NO_SEQ if before is None else before, check_limit(limit))
        with self._errors():
            rows = self._db.execute(_JOURNAL_NEWEST, args).fetchall()
        return [(int(seq), str(data)) for seq, data in rows]

    async def journal_size(self, kind: str) -> tuple[int, int]:
        with self._errors():
            head = self._db.execute("SELECT seq FROM journal_head WHERE kind = ?", (kind,))
            last = head.fetchone()
            count = self._db.execute("SELECT COUNT(*) FROM journal WHERE kind = ?", (kind,))
            kept = int(count.fetchone()[0])
        return (0 if last is None else int(last[0])), kept

    async def close(self) -> None:
        with self._errors():
            self._db.close()

    def _where(self, conn_id: str) -> str:
        return f"sqlite store {self.path}, connection {conn_id!r}"


def _save(db: sqlite3.Connection, conn: Connection) -> None:
    """Insert or replace `conn` and its domains; ConflictError if another owns one."""
    for domain in conn.domains:
        owner = db.execute("SELECT conn_id FROM domains WHERE domain = ?", (domain,)).fetchone()
        if owner is not None and owner[0] != conn.id:
            raise domain_conflict(domain, owner[0])
    db.execute(
        "INSERT OR REPLACE INTO connections (id, data) VALUES (?, ?)",
        (conn.id, encode_connection(conn)),
    )
    db.execute("DELETE FROM domains WHERE conn_id = ?", (conn.id,))
    db.executemany(
        "INSERT INTO domains (domain, conn_id) VALUES (?, ?)",
        [(domain, conn.id) for domain in conn.domains],
    )
    db.execute(_BUMP)


def _check_owners(db: sqlite3.Connection, conns: list[Connection]) -> None:
    """ConflictError if a domain of `conns` belongs to a connection not among them."""
    ids = {conn.id for conn in conns}
    for conn in conns:
        for domain in conn.domains:
            found = db.execute("SELECT conn_id FROM domains WHERE domain = ?", (domain,))
            owner = found.fetchone()
            if owner is not None and owner[0] not in ids:
                raise domain_conflict(domain, owner[0])


def _append(db: sqlite3.Connection, entry: AuditEntry) -> None:
    """Chain `entry` after the head and move the head, inside the caller's transaction."""
    seq, prev = db.execute(_HEAD).fetchone()
    record = seal(int(seq) + 1, str(prev), entry)
    e = entry
    fields = (e.ts, e.actor, e.action, e.target, e.reason, e.details, e.before, e.after)
    db.execute(_AUDIT_ADD, (record.seq, record.prev, record.hash, *fields))
    db.execute(_SET_HEAD, (record.seq, record.hash))


def _record(row: tuple[Any, ...]) -> AuditRecord:
    seq, prev, digest, ts, *texts = row
    entry = AuditEntry(float(ts), *(str(t) for t in texts))
    return AuditRecord(int(seq), str(prev), str(digest), entry)


def _incident(row: tuple[Any, ...]) -> IncidentRecord:
    ident, connection, state, rev, data = row
    return IncidentRecord(int(ident), str(connection), str(state), int(rev), str(data))


def _upgrade_audit(db: sqlite3.Connection) -> None:
    """Give a version 1 audit table the chain's columns and seal its rows in order."""
    have = {row[1] for row in db.execute("PRAGMA table_info(audit)")}
    missing = [c for c in _AUDIT_COLUMNS if c not in have]
    for column in missing:
        db.execute(f"ALTER TABLE audit ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
    if not missing:
        return
    rows = db.execute(f"SELECT {_FIELDS} FROM audit ORDER BY seq").fetchall()  # noqa: S608
    db.execute("DELETE FROM audit")
    for row in rows:
        _append(db, _record(row).entry)


def _file_mark(path: Path) -> tuple[int, int, int]:
    """(inode, size, mtime in ns) of `path`; zeros for a file that is not there (no WAL)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return 0, 0, 0
    return st.st_ino, st.st_size, st.st_mtime_ns


@contextmanager
def _errors(path: Path) -> Iterator[None]:
    """Turn sqlite3 errors into StoreError naming the file."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"sqlite store {path}: {exc}") from exc
