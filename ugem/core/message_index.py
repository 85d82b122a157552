"""The message index: every message's history (accepted, each attempt, the end) in SQLite.

One file per node, `<data_dir>/maillog.db` (`index_path`), in WAL mode, which
every worker of `ugem serve --workers N` writes (in batches: one transaction a
batch, waiting up to BUSY_S for another writer) and the CLI and the admin API
read, whichever worker handled a message. It holds mail log entries
(`ugem.core.maillog.Entry`) filed by message: `messages` (one row per queue
id, or per refusal at SMTP, which has none: its envelope, first and last
event time), `recipients` and `events` (the line's fields as JSON); a change
of a connection's mail at once (held when it is suspended, released, purged)
is an event of no message, shown in the history of each of that connection's
messages that lived through it.

Promises: `write` files a batch whole or not at all; an entry for a queue id
not seen before (the index started after it was accepted, or a DSN, or mail
taken over from another node) starts its message. `prune(before)` removes the
messages whose last event is older, and `shrink(max_bytes)` the oldest ones
until the file's pages in use fit, both in short transactions (CHUNK
messages each) so that writers never wait long. `search` filters on queue
id, Message-ID, sender, recipient (exact, any case; "@domain" for a whole
domain) and a time window (a message matches when its life, from its first
to its last event, overlaps it), newest first, a page at a time after a
cursor (first time, key), with the total. `per_minute` counts the messages
accepted and the recipients delivered per minute of a window (an hour, say),
over a partial index of those two events' times. The class is not thread-safe: one
thread uses one `MessageIndex` (`ugem.core.maillog_writer` gives it a thread
of its own). Failures raise `sqlite3.Error` or `OSError`; callers map them.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from ugem.core.maillog import Entry

FILE_NAME = "maillog.db"
BUSY_S = 10.0  # seconds a writer waits for another process's transaction
CHUNK = 2000  # messages removed per transaction by prune and shrink
SHRINK_TO = 0.9  # shrink removes history until the pages in use are this share of the limit
OUTCOMES = ("delivered", "deferred", "bounced")
FINAL = ("delivered", "bounced")
ENDS = ("deleted", "expired", "returned")  # a message's own changes that end it
OPEN_END = 1e300  # the end of a message still queued

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    key INTEGER PRIMARY KEY,
    queue_id TEXT UNIQUE,
    first REAL NOT NULL,
    last REAL NOT NULL,
    sender TEXT NOT NULL DEFAULT '' COLLATE NOCASE,
    message_id TEXT NOT NULL DEFAULT '',
    connection TEXT NOT NULL DEFAULT '',
    client_ip TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS messages_first ON messages(first);
CREATE INDEX IF NOT EXISTS messages_sender ON messages(sender, first);
CREATE INDEX IF NOT EXISTS messages_message_id ON messages(message_id);
CREATE TABLE IF NOT EXISTS recipients (
    rcpt TEXT NOT NULL COLLATE NOCASE,
    message INTEGER NOT NULL,
    PRIMARY KEY (rcpt, message)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS recipients_message ON recipients(message);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    message INTEGER,
    ts REAL NOT NULL,
    event TEXT NOT NULL,
    connection TEXT NOT NULL DEFAULT '',
    fields TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_message ON events(message, ts);
CREATE INDEX IF NOT EXISTS events_connection ON events(connection, ts) WHERE message IS NULL;
CREATE INDEX IF NOT EXISTS events_flow ON events(ts, event)
    WHERE event IN ('accepted', 'delivered');
"""

# Each statement files a whole batch, given as one JSON array (`json_each`): one step of
# SQLite a statement, so the writer's thread lets go of the GIL a few times a batch, not
# a few times an entry (the event loop's thread would wait for it each time).
_REFUSALS = """
INSERT INTO messages (key, queue_id, first, last, sender, message_id, connection, client_ip)
SELECT j.value ->> 0, NULL, j.value ->> 1, j.value ->> 1, j.value ->> 2, '', j.value ->> 3,
       j.value ->> 4
FROM json_each(?) AS j ORDER BY j.key
"""
_MESSAGES = """
INSERT INTO messages (queue_id, first, last, sender, message_id, connection, client_ip)
SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4,
       j.value ->> 5, j.value ->> 6
FROM json_each(?) AS j WHERE true ORDER BY j.key
ON CONFLICT (queue_id) DO UPDATE SET
    first = min(first, excluded.first),
    last = max(last, excluded.last),
    sender = CASE WHEN sender = '' THEN excluded.sender ELSE sender END,
    message_id = CASE WHEN message_id = '' THEN excluded.message_id ELSE message_id END,
    connection = CASE WHEN connection = '' THEN excluded.connection ELSE connection END,
    client_ip = CASE WHEN client_ip = '' THEN excluded.client_ip ELSE client_ip END
"""
_KEY = "coalesce(j.value ->> 0, (SELECT key FROM messages WHERE queue_id = j.value ->> 1))"
_RECIPIENTS = f"""
INSERT OR IGNORE INTO recipients (rcpt, message)
SELECT j.value ->> 2, {_KEY} FROM json_each(?) AS j
"""  # noqa: S608 (constants only)
_EVENTS = f"""
INSERT INTO events (message, ts, event, connection, fields)
SELECT {_KEY}, j.value ->> 2, j.value ->> 3, j.value ->> 4, j.value ->> 5
FROM json_each(?) AS j ORDER BY j.key
"""  # noqa: S608 (constants only)
# Messages accepted and recipients delivered per minute from a time (?, ?) until (?).
PER_MINUTE = """
SELECT CAST((ts - ?) / 60 AS INTEGER) AS minute, sum(event = 'accepted'), sum(event = 'delivered')
FROM events WHERE event IN ('accepted', 'delivered') AND ts >= ? AND ts < ? GROUP BY minute
"""
_ENCODE = msgspec.json.Encoder().encode
_DECODE = msgspec.json.Decoder(dict[str, Any]).decode


_COLUMNS = "key, queue_id, first, last, sender, message_id, connection, client_ip"
_REMOVE = (  # the messages of a JSON list of keys, with their recipients and events
    "DELETE FROM events WHERE message IN (SELECT value FROM json_each(?))",
    "DELETE FROM recipients WHERE message IN (SELECT value FROM json_each(?))",
    "DELETE FROM messages WHERE key IN (SELECT value FROM json_each(?))",
)


def index_path(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


@dataclass(frozen=True)
class Filter:
    """What `search` looks for; empty strings and None match everything."""

    queue_id: str = ""
    message_id: str = ""
    sender: str = ""  # an address, or "@domain"
    rcpt: str = ""  # an address, or "@domain"
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True)
class IndexedEvent:
    ts: float
    event: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class Indexed:
    """One message found, with its whole history in time order."""

    key: int
    queue_id: str  # "" for a refusal at SMTP
    first: float
    last: float
    sender: str
    message_id: str
    connection: str
    client_ip: str
    rcpts: tuple[str, ...]
    events: tuple[IndexedEvent, ...]


@dataclass
class _Batch:
    """A batch of entries as the rows of the four statements that file it. A refusal gets
    its key here (after `last`, the greatest key so far: the batch holds the write lock);
    a message with a queue id is one row however many of its entries the batch holds."""

    refusals: list[tuple[int, float, str, str, str]]
    messages: list[list[Any]]
    recipients: list[tuple[int | None, str | None, str]]
    events: list[tuple[int | None, str | None, float, str, str, str]]

    @classmethod
    def of(cls, entries: Sequence[Entry], last: int) -> _Batch:
        batch, found = cls([], [], [], []), dict[str, list[Any]]()
        for entry in entries:
            key, queue_id = batch._message(entry, last, found), entry.queue_id or None
            if key is not None or queue_id is not None:
                batch.recipients += [(key, queue_id, rcpt) for rcpt in entry.rcpts]
            fields = _ENCODE(entry.fields).decode()
            batch.events.append((key, queue_id, entry.ts, entry.event, entry.connection, fields))
        batch.messages = list(found.values())
        return batch

    def _message(self, entry: Entry, last: int, found: dict[str, list[Any]]) -> int | None:
        """The refusal's key; else None, the entry's message (if any) kept in `found`."""
        if entry.event == "refused" and not entry.queue_id:
            key = last + len(self.refusals) + 1
            self.refusals.append((key, entry.ts, entry.sender, entry.connection, entry.client_ip))
            return key
        if entry.queue_id:
            envelope = [entry.sender, entry.message_id, entry.connection, entry.client_ip]
            row = found.setdefault(entry.queue_id, [entry.queue_id, entry.ts, entry.ts, *envelope])
            row[1], row[2] = min(row[1], entry.ts), max(row[2], entry.ts)
            row[3:] = [old or new for old, new in zip(row[3:], envelope, strict=True)]
        return None


class MessageIndex:
    def __init__(self, path: Path, readonly: bool = False) -> None:
        """Open (and, unless `readonly`, create) the index at `path`."""
        self.path = path
        if readonly:
            uri = f"{path.resolve().as_uri()}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, timeout=BUSY_S, isolation_level=None)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=BUSY_S, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # a crash may lose the last batches only
        with self._transaction():
            self._db.executescript(f"BEGIN IMMEDIATE;{SCHEMA}COMMIT;")

    def close(self) -> None:
        self._db.close()

    # -- writing ---------------------------------------------------------------------------

    def write(self, entries: Sequence[Entry]) -> None:
        """File `entries` in one transaction (all or none)."""
        if not entries:
            return
        with self._transaction():
            self._db.execute("BEGIN IMMEDIATE")
            last = int(self._db.execute("SELECT coalesce(max(key), 0) FROM messages").fetchone()[0])
            batch = _Batch.of(entries, last)
            for sql, rows in (
                (_REFUSALS, batch.refusals),
                (_MESSAGES, batch.messages),
                (_RECIPIENTS, batch.recipients),
                (_EVENTS, batch.events),
            ):
                if rows:
                    self._db.execute(sql, (_ENCODE(rows),))
            self._db.execute("COMMIT")

    # -- keeping it small ------------------------------------------------------------------

    def prune(self, before: float) -> int:
        """Remove the history that ended before `before`; how many messages."""
        removed = 0
        while keys := self._keys("SELECT key FROM messages WHERE last < ? LIMIT ?", before):
            removed += self._remove(keys, before)
        with self._transaction():
            self._db.execute("DELETE FROM events WHERE message IS NULL AND ts < ?", (before,))
        return removed

    def used_bytes(self) -> int:
        """Bytes of the file's pages that hold data (freed pages are reused, not counted)."""
        pages = int(self._db.execute("PRAGMA page_count").fetchone()[0])
        free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * int(self._db.execute("PRAGMA page_size").fetchone()[0])

    def shrink(self, max_bytes: int) -> int:
        """Remove the oldest history until the pages in use fit in SHRINK_TO of `max_bytes`
        (nothing while they fit in `max_bytes`); how many messages. Each round removes as
        many as the bytes over the target make, by the average size of a message."""
        if self.used_bytes() <= max_bytes:
            return 0
        removed, target = 0, max_bytes * SHRINK_TO
        while (used := self.used_bytes()) > target:
            count = int(self._db.execute("SELECT count(*) FROM messages").fetchone()[0])
            if not count:
                break
            over = min(CHUNK, max(1, math.ceil(count * (used - target) / used)))
            sql = "SELECT key, last FROM messages ORDER BY key LIMIT ?"  # the oldest first
            oldest = self._db.execute(sql, (over,)).fetchall()
            removed += self._remove([int(key) for key, _ in oldest], float(oldest[-1][1]))
        return removed

    def _keys(self, sql: str, before: float) -> list[int]:
        return [int(r[0]) for r in self._db.execute(sql, (before, CHUNK))]

    def _remove(self, keys: list[int], until: float) -> int:
        """Remove the messages `keys` (and the connections' events up to `until`)."""
        listed = (json.dumps(keys),)
        with self._transaction():
            self._db.execute("BEGIN IMMEDIATE")
            for sql in _REMOVE:
                self._db.execute(sql, listed)
            self._db.execute("DELETE FROM events WHERE message IS NULL AND ts <= ?", (until,))
            self._db.execute("COMMIT")
        return len(keys)

    # -- reading ---------------------------------------------------------------------------

    def search(
        self, found: Filter, limit: int, after: tuple[float, int] | None = None
    ) -> tuple[list[Indexed], int]:
        """A page of the messages `found` names, newest first, after the cursor `after`
        (the first time and key of the last message of the page before); and their total."""
        # The clauses are this module's constants; every value is a bound parameter.
        where, args = _where(found)
        counted = f"SELECT count(*) FROM messages m {where}"  # noqa: S608
        total = int(self._db.execute(counted, args).fetchone()[0])
        page_where, page_args = where, list(args)
        if after is not None:
            page_where += " AND (m.first < ? OR (m.first = ? AND m.key < ?))"
            page_args += [after[0], after[0], after[1]]
        order = "ORDER BY m.first DESC, m.key DESC LIMIT ?"
        sql = f"SELECT {_COLUMNS} FROM messages m {page_where} {order}"  # noqa: S608
        rows = self._db.execute(sql, [*page_args, limit]).fetchall()
        return [self._history(row) for row in rows], total

    def per_minute(self, since: float, minutes: int) -> dict[int, tuple[int, int]]:
        """Messages accepted and recipients delivered in each of the `minutes` minutes from
        `since`, by the minute's number from 0 (minutes with neither are left out); one
        query over the partial index `events_flow`."""
        rows = self._db.execute(PER_MINUTE, (since, since, since + 60 * minutes)).fetchall()
        return {int(m): (int(a), int(d)) for m, a, d in rows}

    def _history(self, row: Sequence[Any]) -> Indexed:
        key, queue_id, first, last, sender, message_id, connection, client_ip = row
        rcpts = tuple(
            str(r[0])
            for r in self._db.execute("SELECT rcpt FROM recipients WHERE message = ?", (key,))
        )
        own = self._db.execute(
            "SELECT ts, event, fields FROM events WHERE message = ? ORDER BY ts, id", (key,)
        ).fetchall()
        events = [IndexedEvent(float(ts), str(name), _DECODE(text)) for ts, name, text in own]
        theirs = []
        if connection and queue_id:  # what befell its connection's mail while it was queued
            end = ended(events, rcpts)
            theirs = self._db.execute(
                "SELECT ts, event, fields FROM events WHERE message IS NULL AND connection = ? "
                "AND ts >= ? AND ts <= ? ORDER BY ts, id",
                (connection, first, OPEN_END if end is None else end),
            ).fetchall()
        if theirs:  # merged in time order (a stable sort: the message's own first at a tie)
            shared = [IndexedEvent(float(ts), str(n), _DECODE(t)) for ts, n, t in theirs]
            events = sorted([*events, *shared], key=lambda e: e.ts)
        return Indexed(
            key=int(key),
            queue_id=queue_id or "",
            first=float(first),
            last=float(last),
            sender=sender,
            message_id=message_id,
            connection=connection,
            client_ip=client_ip,
            rcpts=rcpts,
            events=tuple(events),
        )

    # -- plumbing --------------------------------------------------------------------------

    def _transaction(self) -> _Rollback:
        return _Rollback(self._db)


class _Rollback:
    """Roll back an open transaction when the block fails, so the connection stays usable."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if exc is not None and self._db.in_transaction:
            self._db.execute("ROLLBACK")


def final_outcomes(events: Sequence[IndexedEvent]) -> dict[str, str]:
    """Each recipient's last outcome (lower-cased address -> delivered/deferred/bounced)."""
    return {str(e.fields.get("rcpt", "")).lower(): e.event for e in events if e.event in OUTCOMES}


def ended(events: Sequence[IndexedEvent], rcpts: Sequence[str]) -> float | None:
    """When the message left the queue (deleted, expired, returned, or its last recipient
    delivered or bounced); None while it is queued, as far as its history says."""
    for ev in events:
        if ev.event in ENDS and ev.fields.get("queue_id"):
            return ev.ts
    final = final_outcomes(events)
    if rcpts and all(final.get(rcpt.lower()) in FINAL for rcpt in rcpts):
        return max(e.ts for e in events if e.event in OUTCOMES)
    return None


def _where(found: Filter) -> tuple[str, list[Any]]:
    """The WHERE clause (over `messages m`) and its arguments for `found`."""
    clauses, args = ["1"], list[Any]()
    if found.queue_id:
        clauses.append("m.queue_id = ?")
        args.append(found.queue_id)
    if found.message_id:
        clauses.append("m.message_id = ?")
        args.append(found.message_id)
    if found.sender:
        clauses.append(_address_clause("m.sender", found.sender))
        args.append(_address_arg(found.sender))
    if found.rcpt:
        inner = _address_clause("r.rcpt", found.rcpt)
        clauses.append(f"m.key IN (SELECT r.message FROM recipients r WHERE {inner})")  # noqa: S608
        args.append(_address_arg(found.rcpt))
    if found.since is not None:
        clauses.append("m.last >= ?")
        args.append(found.since)
    if found.until is not None:
        clauses.append("m.first < ?")
        args.append(found.until)
    return "WHERE " + " AND ".join(clauses), args


def _address_clause(column: str, address: str) -> str:
    """An address matches as it is (any case); "@domain" matches the whole domain."""
    return f"{column} LIKE ? ESCAPE '\\'" if address.startswith("@") else f"{column} = ?"


def _address_arg(address: str) -> str:
    if not address.startswith("@"):
        return address
    escaped = address.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return "%" + escaped
