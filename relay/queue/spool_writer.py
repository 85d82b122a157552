"""The spool's writer thread: group commit of every write queued to it.

How it works: one thread owns the write connection. Writes (commit, update,
remove, hold, ...) are queued to it as ops; it takes everything pending (at most
`max_batch`), runs it in ONE transaction, commits (one fsync of the write-ahead
log for the whole batch), and then resolves each caller's future on its event
loop. It keeps `size`, the number of messages, from what each op reports.

Promise: a future resolves only once its op is committed, or with the error
that kept it out: nothing is lost silently. How it fails: a failed batch is
retried op by op, so one bad op does not fail its neighbours. An op that finds
no space asks `on_full` to free some (the spool gives up its reserve) and, if it
did and the op records rather than adds (not a `commit` or an `adopt`), runs once
more. A failure of the storage (not a full spool, not an op refused on its own merits
such as a duplicate id) stays in `failure` until a write succeeds again. The
thread outlives every failure; `stop` finishes what is queued first."""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from relay.queue.spool_sql import _spool_error, _sqlite_code
from ugem.core.errors import SpoolFullError
from ugem.core.log import event
from ugem.core.metrics import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")
ADDS = ("commit", "adopt")  # ops that add a message: never written with the reserve's room


class _Absolute(int):
    """A size change that sets the message count instead of adding to it."""


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
        return freed and op.what not in ADDS

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
