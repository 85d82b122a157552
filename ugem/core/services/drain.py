"""Draining a node into another: hand every queued message over, then say it is empty.

`DrainService` is the one logic of `ugem drain` and `/v1/drain`. How a drain
goes (`run`, or `start` as a task of this process):

1. The request is audited (`node.drain`, target where to) and written
   (`ugem.core.drain_state`, `<data_dir>/drain/request.json`) before anything
   moves. From then on every worker of the node (`ugem.draining`) greets new
   SMTP sessions with 421 4.3.2, closes the others between commands, starts
   no delivery, and `/readyz` answers 503 "draining ..."; so does the node
   after a restart, until the drain is cancelled. A request for the same
   receiver is resumed (same id), one for another replaces it.
2. The run waits until every running worker answers that it is quiet for
   this request: no delivery attempt in flight, every outcome written, no
   SMTP session open (at most `pause_timeout` seconds, else it stops naming
   the worker). From then on only this run changes the queue (and operators,
   by hand), so what it reads is what it sends.
3. Each message, oldest first, read whole from whichever worker's spool holds
   it (`MailQueue`), is handed to the `Receiver` (`connect(to, token)`:
   `ugem.core.transfer_client` over the other node's admin API) and deleted
   here only after the receiver said it holds it durably: created now, or
   already (a retry). A message the receiver refuses on its own merits stays
   here with the reason and the run goes on; a receiver that refuses every
   message (its token, it is draining itself) stops the run; one not reached
   (or failing, or full) is tried `RETRIES` more times, spaced, then stops
   the run. What is not handed over stays here, untouched.
4. The report (`DrainReport`): moved, already there, failed (with reasons),
   left here, and `done` once the queue is empty, kept in
   `<data_dir>/drain/progress.json` as it goes, so any worker's `GET
   /v1/drain` and `ugem drain --status` follow it. The end is audited
   (`node.drained`, with the counts).

Why the receiver's admin API rather than SMTP with a transfer extension: it
is authenticated by that node's own tokens and roles (admin), so nothing new
is offered on port 25 for strangers to probe; the queue's metadata (schedule,
hold, history) travels as plain JSON, not squeezed into an ESMTP parameter or
a header the receiver must strip; the answer can say "already have it"; and
the receiver checks each message against its own limits all the same.

Exactly once: the receiver keeps the sender's queue id and answers "already"
for an id it holds or took within longer than any message may stay queued
(`ugem.core.services.transfer`), and the sender deletes only after an answer.
A kill of either side at any point leaves the message here (not yet
answered) or there and maybe here too (answered or committed, not yet
deleted); the next run hands that one again, is told "already" and deletes
it: counted in `already`, never queued twice, never lost. A duplicate
delivery is left only where the receiver's spool itself is lost.

One run at a time per node: `<data_dir>/drain/run.lock`; another is a
`ConflictError`. `cancel` removes the request (audited `node.drain-cancel`):
the workers take mail and deliver again, and a run in progress stops before
its next message. Errors: a bad receiver address or an empty token is a
`UsageError` and changes nothing; an audit log that cannot be written
(`StoreError`) changes nothing; a spool that fails mid-run stops the run with
the reason in the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

from ugem.core.clock import Clock
from ugem.core.drain_state import DrainFiles, DrainRequest, FileLock, WorkerAnswer
from ugem.core.errors import ConflictError, TransferError, UgemError, UsageError
from ugem.core.log import event
from ugem.core.metrics import Metrics
from ugem.core.queue_filter import MailFilter
from ugem.core.services.audit import AuditLog
from ugem.core.services.mailqueue import MailItem, MailQueue

log = logging.getLogger(__name__)
EVERYTHING = MailFilter()  # the whole queue

PAGE = 200  # messages listed at a time
CONCURRENCY = 8  # messages handed over at once (the receiver's group commit takes them)
RETRIES = 3  # more tries of a message when the receiver was not reached
RETRY_DELAY = 0.5  # seconds before the first retry; doubled for each next one
PAUSE_TIMEOUT = 300.0  # seconds the workers get to become quiet
PAUSE_POLL = 0.1  # seconds between looks at the workers' answers
SAVE_EVERY = 0.5  # seconds between writes of the progress
MAX_FAILURES = 100  # failures kept with their reason in the report
LEFT_LIMIT = 1_000_000  # most messages counted as left


class Receiver(Protocol):
    """The node a drain hands messages to."""

    async def hand(self, item: MailItem) -> bool:
        """True: it made `item` durable now; False: it had it already. TransferError else."""
        ...

    async def close(self) -> None: ...


Connect = Callable[[str, str], Receiver]  # (to, token) -> the receiver; UsageError if bad
Progress = Callable[["DrainReport"], None]


@dataclass
class DrainReport:
    """A drain run: what it did so far and how it ended (state done or stopped)."""

    request: str
    to: str
    state: str = "pausing"  # pausing, moving, done (the queue is empty), stopped
    moved: int = 0  # the receiver made it durable now; deleted here
    already: int = 0  # the receiver had it (a retry after a cut); deleted here
    failed: int = 0  # refused on its own merits: it stays here (failures say why)
    left: int = 0  # messages still queued here at the end
    reason: str = ""  # why it stopped, or what it waits for
    failures: dict[str, str] = field(default_factory=dict)  # queue id -> why (the first ones)
    started_at: float = 0.0
    updated_at: float = 0.0
    pid: int = 0

    @property
    def empty(self) -> bool:
        return self.state == "done"

    @property
    def over(self) -> bool:
        return self.state in ("done", "stopped")

    def stop(self, reason: str) -> None:
        if not self.over:
            self.state, self.reason = "stopped", reason

    def fail(self, queue_id: str, reason: str) -> None:
        self.failed += 1
        if len(self.failures) < MAX_FAILURES:
            self.failures[queue_id] = reason

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, saved: dict[str, Any] | None) -> DrainReport | None:
        """The report kept in progress.json; None if there is none or it is damaged."""
        if saved is None:
            return None
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in saved.items() if k in known})
        except TypeError:
            return None


@dataclass(frozen=True)
class DrainStatus:
    """The drain as any process of the node sees it."""

    request: DrainRequest | None  # None: the node is not draining
    running: bool  # a run is moving the queue now (in some process)
    workers: dict[int, WorkerAnswer | None]  # running workers and their answers
    report: DrainReport | None  # the last run's report


@dataclass
class _Run:
    request: DrainRequest
    receiver: Receiver
    lock: FileLock
    actor: str
    report: DrainReport
    on_progress: Progress | None = None
    saved_at: float = -1.0


class DrainService:
    def __init__(
        self,
        queue: MailQueue,
        files: DrainFiles,
        audit: AuditLog,
        clock: Clock,
        connect: Connect,
        metrics: Metrics | None = None,
        pause_timeout: float = PAUSE_TIMEOUT,
    ) -> None:
        self.queue = queue
        self.files = files
        self.audit = audit
        self.clock = clock
        self.connect = connect
        self.metrics = metrics or Metrics()
        self.pause_timeout = pause_timeout
        self._task: asyncio.Task[DrainReport] | None = None

    # ------------------------------------------------------------ asking and looking

    def status(self) -> DrainStatus:
        workers = {w: self.files.answer(w) for w in self.files.running_workers()}
        report, running = DrainReport.of(self.files.progress()), self.files.running()
        if report is not None and not report.over and not running:
            report.stop(f"interrupted: the process that ran it ({report.pid}) is gone")
        return DrainStatus(self.files.request(), running, workers, report)

    async def run(
        self, to: str, token: str, actor: str, reason: str = "", on_progress: Progress | None = None
    ) -> DrainReport:
        """Drain into `to` now and return the report (done: the node is empty)."""
        return await self._finish(await self._begin(to, token, actor, reason, on_progress))

    async def start(self, to: str, token: str, actor: str, reason: str = "") -> DrainStatus:
        """Drain into `to` as a task of this process; the status once it has begun."""
        run = await self._begin(to, token, actor, reason, None)
        self._task = asyncio.create_task(self._finish(run), name="drain")
        return self.status()

    async def stop_accepting(self, actor: str, reason: str = "") -> DrainStatus:
        """The node takes no mail from now on and goes on delivering its queue (a request
        without a target, audited `node.stop-accepting`); already so: nothing changes. A
        drain into another node is a ConflictError: cancel it first."""
        current = self.files.request()
        if current is not None and current.to:
            raise ConflictError(f"draining into {current.to}; cancel that drain first")
        if current is None:
            request = DrainRequest(secrets.token_hex(8), "", self.clock.now(), actor)
            details = {"request": request.id}
            await self.audit.record(actor, "node.stop-accepting", "", reason, details=details)
            self.files.ask(request)
            event(log, "drain_stop_accepting", request=request.id)
        return self.status()

    async def left(self) -> int:
        """Messages still queued in the node (every worker's spool)."""
        return await self.queue.count(EVERYTHING)

    async def cancel(self, actor: str, reason: str = "") -> DrainStatus:
        """Take the node out of its drain: it takes mail and delivers again."""
        request = self.files.request()
        if request is not None:
            details = {"request": request.id}
            await self.audit.record(actor, "node.drain-cancel", request.to, reason, details=details)
            self.files.clear()
            event(log, "drain_cancelled", to=request.to, request=request.id)
        return self.status()

    async def close(self) -> None:
        """Stop a run this process started (what is not handed over stays queued)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # ------------------------------------------------------------ one run

    async def _begin(
        self, to: str, token: str, actor: str, reason: str, on_progress: Progress | None
    ) -> _Run:
        """Checks, the run lock, the receiver and the request: all or nothing."""
        if not token.strip():
            raise UsageError("token: empty; give an admin token of the receiving node")
        if self._task is not None and not self._task.done():
            raise ConflictError("a drain is running in this process; see its progress")
        lock = self.files.run_lock()
        if not lock.try_acquire():
            raise ConflictError(f"a drain of this node is running already{self._runner()}")
        try:
            receiver = self.connect(to, token.strip())
        except BaseException:
            lock.release()
            raise
        try:
            request = await self._ask(to, actor, reason)
        except BaseException:
            lock.release()
            await receiver.close()
            raise
        report = DrainReport(request.id, to, started_at=self.clock.now(), pid=os.getpid())
        return _Run(request, receiver, lock, actor, report, on_progress)

    def _runner(self) -> str:
        report = DrainReport.of(self.files.progress())
        return f" (process {report.pid}, into {report.to})" if report is not None else ""

    async def _ask(self, to: str, actor: str, reason: str) -> DrainRequest:
        current = self.files.request()
        resumed = current is not None and current.to == to
        if current is None or not resumed:
            current = DrainRequest(secrets.token_hex(8), to, self.clock.now(), actor)
        request = current
        details = {"request": request.id, "resumed": resumed}
        await self.audit.record(actor, "node.drain", to, reason, details=details)
        if not resumed:
            self.files.ask(request)
        event(log, "drain_requested", to=to, request=request.id, resumed=resumed)
        return request

    async def _finish(self, run: _Run) -> DrainReport:
        report = run.report
        try:
            if await self._pause(run):
                report.state, report.reason = "moving", ""
                self._save(run, force=True)
                await self._move(run)
        except asyncio.CancelledError:
            report.stop("the drain was interrupted (the node is stopping)")
            raise
        except UgemError as exc:
            report.stop(str(exc))
        except Exception as exc:  # a bug: the queue stays as it is, the report says so
            event(log, "drain_error", logging.ERROR, exc_info=True, request=run.request.id)
            report.stop(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            await self._end(run)
        return report

    async def _end(self, run: _Run) -> None:
        report = run.report
        try:
            report.left = len(await self.queue.list(EVERYTHING, LEFT_LIMIT))
        except UgemError as exc:
            report.stop(f"the queue cannot be read: {exc}")
        if not report.over:
            report.state = "done" if report.left == 0 else "stopped"
            report.reason = "" if report.left == 0 else report.reason or _left(report)
        self._save(run, force=True)
        await run.receiver.close()
        run.lock.release()
        level = logging.INFO if report.empty else logging.WARNING
        ending: dict[str, Any] = {"moved": report.moved, "already": report.already}
        ending |= {"failed": report.failed, "left": report.left, "state": report.state}
        event(log, "drain_ended", level, to=report.to, reason=report.reason, **ending)
        with contextlib.suppress(UgemError):  # the mail has moved; the log says so anyway
            await self.audit.record(
                run.actor, "node.drained", report.to, report.reason, details=ending
            )

    async def _pause(self, run: _Run) -> bool:
        """Wait until every running worker is quiet for the request; False if it stopped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.pause_timeout
        while True:
            if self._cancelled(run):
                return False
            waiting = self._not_quiet(run.request)
            if not waiting:
                return True
            worker, answer = waiting[0]
            busy = _busy(worker, answer)
            if loop.time() > deadline:
                run.report.stop(f"{busy} within {self.pause_timeout:g} s; nothing was moved")
                return False
            run.report.reason = busy
            self._save(run)
            await asyncio.sleep(PAUSE_POLL)

    def _not_quiet(self, request: DrainRequest) -> list[tuple[int, WorkerAnswer | None]]:
        answers = [(w, self.files.answer(w)) for w in self.files.running_workers()]
        return [(w, a) for w, a in answers if a is None or a.request != request.id or not a.quiet]

    async def _move(self, run: _Run) -> None:
        """Every message, page by page, each taken once, until a page brings none new."""
        seen: set[str] = set()
        while not run.report.over:
            listed = await self.queue.list(EVERYTHING, PAGE + len(seen))
            fresh = [m.id for m in listed if m.id not in seen]
            if not fresh:
                return
            seen.update(fresh)
            page = iter(fresh)  # one iterator: each id is taken by one of the hands
            hands = [self._hand_page(run, page) for _ in range(CONCURRENCY)]
            for failure in await asyncio.gather(*hands, return_exceptions=True):
                if isinstance(failure, BaseException):  # all hands are done: raise the first
                    raise failure

    async def _hand_page(self, run: _Run, page: Iterator[str]) -> None:
        for queue_id in page:
            if self._cancelled(run) or run.report.over:
                return
            try:
                await self._hand(run, queue_id)
            except UgemError as exc:  # the spool: the message stays (or is handed again)
                run.report.stop(f"queue id {queue_id}: {exc}")
                return

    async def _hand(self, run: _Run, queue_id: str) -> None:
        """Hand one message over and delete it here once the receiver holds it."""
        item = await self.queue.get(queue_id, with_text=True)
        if item is None:
            return  # gone meanwhile (an operator deleted it)
        created = await self._handed(run, item)
        if created is None:
            return  # refused or not reached: it stays (the report says why)
        await self.queue.delete([queue_id])
        if created:
            run.report.moved += 1
        else:
            run.report.already += 1
            event(log, "drain_already_there", logging.INFO, queue_id=queue_id, to=run.report.to)
        self.metrics.drained.labels("moved" if created else "already").inc()
        self._save(run)

    async def _handed(self, run: _Run, item: MailItem) -> bool | None:
        """The receiver's answer (True: created, False: already); None when it refused or
        was not reached (the report says so: a failure, or the run stopped)."""
        for attempt in range(RETRIES + 1):
            try:
                return await run.receiver.hand(item)
            except TransferError as exc:
                if exc.scope == TransferError.MESSAGE:
                    run.report.fail(item.id, str(exc))
                    self.metrics.drained.labels("failed").inc()
                    event(log, "drain_refused", logging.WARNING, queue_id=item.id, error=str(exc))
                    return None
                if exc.scope == TransferError.RECEIVER or attempt == RETRIES:
                    run.report.stop(str(exc))
                    return None
                event(log, "drain_retry", logging.INFO, queue_id=item.id, error=str(exc))
                await asyncio.sleep(RETRY_DELAY * 2**attempt)
        return None

    def _cancelled(self, run: _Run) -> bool:
        current = self.files.request()
        if current is None or current.id != run.request.id:
            run.report.stop("the drain was cancelled" if current is None else "another drain")
            return True
        return False

    def _save(self, run: _Run, force: bool = False) -> None:
        """Keep the report in progress.json (at most every SAVE_EVERY s unless `force`)."""
        now = asyncio.get_running_loop().time()
        if not force and now - run.saved_at < SAVE_EVERY:
            return
        run.saved_at = now
        run.report.updated_at = self.clock.now()
        self.files.report(run.report.as_dict())
        if run.on_progress is not None:
            run.on_progress(run.report)


def _busy(worker: int, answer: WorkerAnswer | None) -> str:
    if answer is None:
        return f"worker {worker} has not paused yet"
    return (
        f"worker {worker} is not quiet yet: {answer.in_flight} deliveries in flight, "
        f"{answer.sessions} SMTP sessions open"
    )


def _left(report: DrainReport) -> str:
    if report.failed:
        return f"{_messages(report.failed)} refused by {report.to}; they stay here"
    return f"{_messages(report.left)} still queued here"


def _messages(n: int) -> str:
    return f"{n} message" if n == 1 else f"{n} messages"
