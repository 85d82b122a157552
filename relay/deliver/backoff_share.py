"""The rate-limit cuts of a node's workers, shared through a small SQLite file.

Remote servers limit the gateway's addresses, not one of its worker processes:
when one worker hears "421 4.7.28 ... rate limited", every worker sending to
that destination should hold back. `SharedCuts(path, worker)` keeps, in a file
of the node's data directory, one row per cut a worker made (destination, its
rate-limit replies so far, when, which worker): `publish(key, strikes)` adds
one (the `Backoff.on_cut` of this worker, relay.deliver.backoff), and
`pull()` returns the other workers' cuts since the last pull, in order, for
`Backoff.heard` to apply. The node pulls every `PULL_S` seconds, so a cut
reaches every worker within about that.

What it promises: a cut is published once and read once by each other worker
(a cursor of row ids; a worker started later reads only cuts made after it
opened the file: it learns older limits from its own attempts); rows older
than `KEEP_S` are deleted as new ones come, so the file stays small (cuts are
rare: one per destination and episode, not per message). Cost: a write per cut,
a read of the new rows per pull (nothing to read, nothing to apply).
How it fails: the file is local and tiny; an OSError or sqlite3.Error is
logged at WARNING (`backoff_share_failed`) and that publish or pull is lost
(the worker goes on with its own back-off), never raised.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Final

from ugem.core.clock import Clock
from ugem.core.log import event

log = logging.getLogger(__name__)

PULL_S: Final = 1.0  # seconds between two pulls of a worker
KEEP_S: Final = 3600.0  # cuts older than this are deleted
_SCHEMA = """
CREATE TABLE IF NOT EXISTS cuts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    destination TEXT NOT NULL,
    strikes INTEGER NOT NULL,
    at REAL NOT NULL,
    worker INTEGER NOT NULL
)
"""


class SharedCuts:
    def __init__(self, path: Path, worker: int, clock: Clock) -> None:
        self.worker, self.clock = worker, clock
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=1.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        row = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM cuts").fetchone()
        self._cursor = int(row[0])

    def publish(self, key: str, strikes: int) -> None:
        """This worker cut `key` to `strikes` rate-limit replies."""
        now = self.clock.now()
        try:
            self._db.execute("DELETE FROM cuts WHERE at < ?", (now - KEEP_S,))
            self._db.execute(
                "INSERT INTO cuts (destination, strikes, at, worker) VALUES (?, ?, ?, ?)",
                (key, strikes, now, self.worker),
            )
        except (OSError, sqlite3.Error) as exc:
            event(log, "backoff_share_failed", logging.WARNING, step="publish", error=str(exc))

    def pull(self) -> list[tuple[str, int]]:
        """The (destination, strikes) of the other workers' cuts since the last pull."""
        try:
            rows = self._db.execute(
                "SELECT id, destination, strikes, worker FROM cuts WHERE id > ? ORDER BY id",
                (self._cursor,),
            ).fetchall()
        except (OSError, sqlite3.Error) as exc:
            event(log, "backoff_share_failed", logging.WARNING, step="pull", error=str(exc))
            return []
        if rows:
            self._cursor = int(rows[-1][0])
        mine = self.worker
        return [(str(key), int(strikes)) for _, key, strikes, worker in rows if worker != mine]

    def close(self) -> None:
        self._db.close()
