"""The shared traffic log: every worker's and node's relay events in one order.

With several workers or nodes, each sees only its share of a connection's
mail, yet the anomaly detector must judge the connection's whole traffic.
`TrafficLog` is an append-only, totally ordered log of trace records (the
lines of ../shared/anomaly/TRACE-FORMAT.md, as JSON text), kept beside the
registry store and chosen by the same `[store] url`:

- SQLite: its own file `traffic.db` beside the registry's, WAL, with
  `synchronous = OFF` (a transient feed: a power cut may lose its last events,
  the registry's guarantees are untouched); rows older than `retention`
  seconds of the injected clock are deleted as new ones arrive (by sequence
  number, a range of the primary key: a minute's precision, never a scan of
  the table); claims expire by the same clock. Workers of one machine share the file.
- Redis (`redis://` or `redis+sentinel://`: the store's client,
  `ugem.core.store.redis.redis_client`, so it follows a Sentinel failover): a
  stream `<prefix>traffic`, trimmed to about `max_events` entries; claims are
  keys that Redis expires (its own clock).

`append(records)` is one round trip (one transaction) for a whole batch, so
the relay pays at most one per message and usually much less. `read(cursor)`
returns the records after a cursor and the new cursor, waiting up to `wait`
seconds for some; `tail()` is the cursor of the newest record (a reader that
starts there sees only what comes next). `claim(key, ttl)` is true for
exactly one caller until `ttl` seconds pass: how the nodes that all reached
the same verdict pick the one that acts on it. Errors of SQLite or Redis are
raised as `StoreError` naming the log; so is any call after `close()` (on Redis
refused before it could open a connection again: `ugem.core.store.redis_gate`,
whose `close()` also waits for the calls under way).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from ugem.core.clock import Clock, SystemClock
from ugem.core.errors import StoreError
from ugem.core.redis_url import is_redis_url
from ugem.core.store import SQLITE_PREFIX
from ugem.core.store.redis import TIMEOUT, redact, redis_client
from ugem.core.store.redis_gate import RedisGate
from ugem.core.store.redis_keys import PREFIX, legacy_move

RETENTION_S = 3600.0  # SQLite: seconds (of the clock) a record is kept, give or take MARK_S
MARK_S = 60.0  # SQLite: how often the log notes how far it got, to trim by later
MAX_EVENTS = 1_000_000  # Redis: about how many records the stream keeps
START = "0"  # the cursor before the first record


class TrafficLog(Protocol):
    name: str

    async def append(self, records: Sequence[str]) -> None: ...

    async def read(
        self, cursor: str, limit: int = 1000, wait: float = 0.1
    ) -> tuple[str, list[str]]: ...

    async def tail(self) -> str: ...

    async def claim(self, key: str, ttl: float) -> bool: ...

    async def close(self) -> None: ...


def open_traffic_log(store_url: str, clock: Clock | None = None) -> TrafficLog:
    """The traffic log that goes with the registry store at `store_url`."""
    if is_redis_url(store_url):
        return RedisTrafficLog(store_url)
    registry = Path(store_url[len(SQLITE_PREFIX) :])
    return SqliteTrafficLog(registry.with_name("traffic.db"), clock or SystemClock())


class SqliteTrafficLog:
    def __init__(self, path: Path, clock: Clock, retention: float = RETENTION_S) -> None:
        self.name = f"sqlite traffic log {path}"
        self.clock, self.retention = clock, retention
        self._marks: deque[tuple[float, int]] = deque()  # (time, last seq then), a minute apart
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = OFF")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS traffic (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " at REAL NOT NULL, record TEXT NOT NULL)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, until REAL NOT NULL)"
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{self.name}: cannot open: {exc}") from exc

    async def append(self, records: Sequence[str]) -> None:
        now = self.clock.now()
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT INTO traffic (at, record) VALUES (?, ?)", [(now, r) for r in records]
                )
                self._trim(now)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.name}: append: {exc}") from exc

    def _trim(self, now: float) -> None:
        """Delete what is older than `retention`: by sequence number (the primary key; a
        range, never a scan), up to the last one this log appended before that time."""
        marks = self._marks
        if not marks or now - marks[-1][0] >= MARK_S:
            last = self._db.execute("SELECT last_insert_rowid()").fetchone()[0]
            marks.append((now, int(last)))
        cut = None
        while marks and marks[0][0] < now - self.retention:
            cut = marks.popleft()[1]
        if cut is not None:
            self._db.execute("DELETE FROM traffic WHERE seq <= ?", (cut,))
            self._db.execute("DELETE FROM claims WHERE until < ?", (now,))

    async def read(
        self, cursor: str, limit: int = 1000, wait: float = 0.1
    ) -> tuple[str, list[str]]:
        rows = self._rows(cursor, limit)
        if not rows and wait > 0:
            await asyncio.sleep(wait)  # SQLite cannot block on new rows: poll
            rows = self._rows(cursor, limit)
        if not rows:
            return cursor, []
        return str(rows[-1][0]), [r[1] for r in rows]

    def _rows(self, cursor: str, limit: int) -> list[tuple[int, str]]:
        try:
            return self._db.execute(
                "SELECT seq, record FROM traffic WHERE seq > ? ORDER BY seq LIMIT ?",
                (int(cursor), limit),
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.name}: read: {exc}") from exc

    async def tail(self) -> str:
        try:
            row = self._db.execute("SELECT MAX(seq) FROM traffic").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.name}: tail: {exc}") from exc
        return str(row[0] or 0)

    async def claim(self, key: str, ttl: float) -> bool:
        now = self.clock.now()
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                taken = self._db.execute(
                    "INSERT INTO claims (key, until) VALUES (?, ?) ON CONFLICT (key)"
                    " DO UPDATE SET until = excluded.until WHERE claims.until < ?",
                    (key, now + ttl, now),
                ).rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"{self.name}: claim: {exc}") from exc
        return taken == 1

    async def close(self) -> None:
        self._db.close()


class RedisTrafficLog:
    def __init__(self, url: str, prefix: str = PREFIX, max_events: int = MAX_EVENTS) -> None:
        self.name = f"redis traffic log {redact(url)}"
        client = redis_client(url, socket_timeout=TIMEOUT)
        self._gate = RedisGate(client, self.name, legacy_move(prefix))
        self._redis = self._gate.client  # to build commands on; every call goes through the gate
        self._stream, self._claims = f"{prefix}traffic", f"{prefix}claim:"
        self.max_events = max_events

    async def append(self, records: Sequence[str]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for record in records:
            pipe.xadd(self._stream, {"r": record}, maxlen=self.max_events, approximate=True)
        await self._gate.run(pipe.execute, "append")

    async def read(
        self, cursor: str, limit: int = 1000, wait: float = 0.1
    ) -> tuple[str, list[str]]:
        block = max(1, int(wait * 1000)) if wait > 0 else None
        found: Any = await self._gate.run(
            lambda: self._redis.xread({self._stream: cursor}, count=limit, block=block), "read"
        )
        if not found:
            return cursor, []
        entries = found[0][1]  # [[stream, [(id, fields), ...]]]
        return str(entries[-1][0]), [str(fields["r"]) for _, fields in entries]

    async def tail(self) -> str:
        newest = await self._gate.run(lambda: self._redis.xrevrange(self._stream, count=1), "tail")
        return str(newest[0][0]) if newest else START

    async def claim(self, key: str, ttl: float) -> bool:
        px = max(1, int(ttl * 1000))
        taken = await self._gate.run(
            lambda: self._redis.set(self._claims + key, "1", nx=True, px=px), "claim"
        )
        return bool(taken)

    async def close(self) -> None:
        await self._gate.close()
