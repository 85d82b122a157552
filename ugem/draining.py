"""A worker's part in a drain of its node, and the drain's services wired for a node or a CLI.

`DrainWatch` follows the node's drain request (`ugem.core.drain_state`) for
one worker. `begin()`, at the worker's start before its scheduler and its SMTP
listener start, takes the worker's lock (`<data_dir>/drain/w<i>.lock`, held
until `close()` or the death of the process: how a drain tells running workers
from dead ones) and applies the request, so a node restarted in the middle of
a drain comes back draining. `check()` (every `CHECK_INTERVAL` seconds)
applies it again:

- a request: the SMTP listener greets new sessions with 421 4.3.2
  (`relay.replies.DRAINING`) and closes the others between commands (a DATA in
  progress is finished and committed), the scheduler starts no attempt
  (`Scheduler.pause`), `refusal()` is the reason `/readyz` answers 503 with
  ("draining into ..."), the gauge `ugem_draining` is 1, and the worker's
  answer (`w<i>.json`) says how many attempts are in flight and sessions
  open, `quiet` once there are none: the drain moves nothing before every
  running worker is quiet.
- a request without a target (`ugem drain` alone: stop accepting, keep
  delivering): the same 421 and 503 ("not accepting mail ..."), but the
  scheduler goes on delivering the queue, until it is cancelled; the request
  may change into one with a target (then delivery stops) and back.
- no request (never asked, or cancelled): mail is taken and delivered again,
  the answer is withdrawn.

How it fails: a request that cannot be read raises `UgemError` at `begin()`
(the start stops: the worker cannot tell whether it may take mail); in
`check()` it keeps the worker as it was (the node's periodic step logs it).
A lock held by another process (two nodes on one data_dir) is logged
(`drain_lock_busy`, WARNING), and the worker runs without it.

`drain_service` and `transfer_service` build the two halves over a queue
and a store: the sending one (`ugem drain`, `POST /v1/drain`) hands mail to
the other node's admin API (`ugem.core.transfer_client`), the receiving one
(`POST /v1/queue/import`) adopts it into this worker's spool.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime
from typing import Protocol

from relay import replies
from relay.replies import Reply
from ugem.adapters.spool_queue import SpoolQueue
from ugem.core.clock import Clock
from ugem.core.config import Config
from ugem.core.drain_state import DrainFiles, DrainRequest, WorkerAnswer
from ugem.core.errors import UgemError
from ugem.core.log import event
from ugem.core.metrics import Metrics
from ugem.core.services.audit import AuditLog
from ugem.core.services.drain import DrainService, Receiver
from ugem.core.services.mailqueue import MailQueue
from ugem.core.services.transfer import TransferLimits, TransferService
from ugem.core.store.base import Store
from ugem.core.transfer_client import HttpReceiver

log = logging.getLogger(__name__)

CHECK_INTERVAL = 0.25  # seconds between looks at the request
LOCK_TRIES = 40  # tries to take the worker's lock at start (a drain may be probing it)
LOCK_RETRY = 0.025  # seconds between them


class Deliveries(Protocol):
    """What a drain asks of the scheduler (`relay.queue.schedule.Scheduler`)."""

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def in_flight(self) -> int: ...

    def idle(self) -> bool: ...


class Doors(Protocol):
    """What a drain asks of the SMTP listener (`relay.accept.listener.AcceptServer`)."""

    def refuse(self, reply: Reply | None) -> None: ...

    def session_count(self) -> int: ...

    def quiet(self) -> bool: ...


class DrainWatch:
    def __init__(
        self,
        files: DrainFiles,
        worker: int,
        scheduler: Deliveries,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self.files = files
        self.worker = worker
        self.scheduler = scheduler
        self.metrics = metrics
        self.clock = clock
        self.listener: Doors | None = None
        self.request: DrainRequest | None = None  # what the worker follows now
        self._lock = files.worker_lock(worker)
        self._answered: tuple[str, int, int, bool] | None = None

    async def begin(self) -> None:
        """Take the worker's lock, then apply the request (before anything starts)."""
        for _ in range(LOCK_TRIES):
            if self._lock.try_acquire():
                break
            await asyncio.sleep(LOCK_RETRY)
        else:
            event(log, "drain_lock_busy", logging.WARNING, path=str(self._lock.path))
        self.files.withdraw_answer(self.worker)  # a former life's, if any
        self._apply(self.files.request())

    def attach(self, listener: Doors) -> None:
        """The SMTP listener (made after the scheduler) follows the request too."""
        self.listener = listener
        if self.request is not None:
            listener.refuse(replies.DRAINING)

    async def check(self) -> None:
        self._apply(self.files.request())

    def refusal(self) -> str | None:
        """Why the worker takes no traffic (for /readyz), None when it is not draining."""
        request = self.request
        if request is None:
            return None
        since = datetime.fromtimestamp(request.since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if not request.to:
            return f"not accepting mail since {since} (by {request.by}): delivering its queue"
        return f"draining into {request.to} since {since} (by {request.by}): takes no mail"

    def close(self) -> None:
        """At the worker's stop: its answer withdrawn, its lock let go."""
        if self._lock.held:
            self.files.withdraw_answer(self.worker)
        self._lock.release()

    def _apply(self, request: DrainRequest | None) -> None:
        was, self.request = self.request, request
        if request is not None and was is None:
            self._pause(request)
        elif request is None and was is not None:
            self._resume(was)
        elif request is not None and was is not None and bool(request.to) != bool(was.to):
            self._deliver(not request.to)  # stop accepting <-> drain into another node
        if request is not None:
            self._answer(request)

    def _deliver(self, on: bool) -> None:
        """Delivery on (stop accepting, keep delivering) or off (drain into another node)."""
        if on:
            self.scheduler.resume()
        else:
            self.scheduler.pause()

    def _pause(self, request: DrainRequest) -> None:
        if request.to:  # into another node: nothing leaves here meanwhile
            self.scheduler.pause()
        if self.listener is not None:
            self.listener.refuse(replies.DRAINING)
        self.metrics.draining.set(1)
        event(log, "drain_paused", logging.WARNING, worker=self.worker, to=request.to)

    def _resume(self, request: DrainRequest) -> None:
        if request.to:
            self.scheduler.resume()
        if self.listener is not None:
            self.listener.refuse(None)
        self.metrics.draining.set(0)
        self._answered = None
        self.files.withdraw_answer(self.worker)
        event(log, "drain_resumed", logging.WARNING, worker=self.worker, was_to=request.to)

    def _answer(self, request: DrainRequest) -> None:
        """Write the worker's answer when it changed."""
        sessions = 0 if self.listener is None else self.listener.session_count()
        quiet = self.scheduler.idle() and (self.listener is None or self.listener.quiet())
        state = (request.id, self.scheduler.in_flight(), sessions, quiet)
        if state == self._answered:
            return
        self._answered = state
        answer = WorkerAnswer(self.worker, request.id, os.getpid(), *state[1:], self.clock.now())
        self.files.give_answer(answer)


def drain_service(
    config: Config, queue: MailQueue, store: Store, clock: Clock, metrics: Metrics
) -> DrainService:
    """The sending half: `queue` handed to another node's admin API."""
    source = config.hostname

    def connect(to: str, token: str) -> Receiver:
        return HttpReceiver(to, token, source)

    files = DrainFiles.of(config.data_path)
    return DrainService(queue, files, AuditLog(store, clock), clock, connect, metrics)


def transfer_service(
    config: Config, queue: SpoolQueue, store: Store, clock: Clock, metrics: Metrics
) -> TransferService:
    """The receiving half: mail another node hands over, adopted into `queue`."""
    files = DrainFiles.of(config.data_path)

    def draining() -> str | None:
        try:
            request = files.request()
        except UgemError:  # fail closed: a node that cannot tell takes nothing
            return "an unknown node (this node's drain request cannot be read)"
        return None if request is None else request.to

    limits = TransferLimits.of(config)
    return TransferService(queue, AuditLog(store, clock), clock, limits, draining, metrics)
