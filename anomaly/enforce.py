"""Enforcement: the anomaly detector inside a running node.

`Enforcer` subscribes to the node's event bus and feeds each event of a
connected server's traffic (accepted messages, per-recipient delivery
outcomes) to a `Detector` in event time: the events carry the node's clock,
never the wall clock of this observer. On a verdict, mode "enforce" suspends
the connection through `ConnectionService.suspend` with actor "detector" (the
store, the audit log, the owner's notice and the operators' alert; the relay
then answers 451 at MAIL FROM and the scheduler holds its queued mail) and
counts it in `ugem_detector_suspensions_total{mode="enforce"}`. Mode "shadow"
suspends and notifies nothing: it logs "would have suspended" at WARNING with
the reason, audits `anomaly.would_suspend` with actor "detector" and counts it
with mode="shadow"; the connection is watched afresh an hour of event time
later. A connection that is not connected any more (suspended by an operator
or another worker meanwhile) is not suspended again; once resumed, it is
watched afresh (the registry's change listener).

Failures never reach the SMTP path: a failed suspension or audit is logged
(and the suspension tried again at the next verdict), and events this
observer fell behind on are dropped by the bus and counted in
`ugem_events_dropped_total{observer="anomaly"}`. Each node worker runs its own
enforcer over its own share of the traffic (state across workers and nodes is
issue 5, item 6).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from anomaly.detector import Detector, Verdict
from ugem.errors import ConfigError, ConflictError
from ugem.events import Accepted, Event, EventBus, Outcome, Subscription
from ugem.log import event
from ugem.metrics import Metrics
from ugem.model import Connection, ConnState
from ugem.services.connections import ConnectionService

log = logging.getLogger("anomaly.enforce")

MODES: Final = ("enforce", "shadow", "off")
ACTOR: Final = "detector"
WOULD_SUSPEND: Final = "anomaly.would_suspend"
SHADOW_REARM_S: Final = 3600.0  # event-time seconds before shadow mode watches a connection again
OUTCOME_KINDS: Final = {"delivered": 1, "deferred": 2, "bounced": 3}  # as anomaly.trace


class Enforcer:
    def __init__(
        self,
        mode: str,
        bus: EventBus,
        connections: ConnectionService,
        metrics: Metrics,
        detector: Detector | None = None,
    ) -> None:
        if mode not in MODES[:2]:
            raise ConfigError("anomaly.mode", mode, "an enforcer runs in enforce or shadow")
        self.mode = mode
        self.detector = detector if detector is not None else Detector()
        self._bus = bus
        self._connections = connections
        self._metrics = metrics
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._rearm: dict[str, float] = {}  # shadow mode: connection -> event time to watch again

    async def start(self) -> None:
        self._sub = self._bus.subscribe("anomaly")
        self._connections.registry.on_change(self._on_change)
        self._task = asyncio.create_task(self._run(), name="anomaly-enforcer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sub is not None:
            self._bus.unsubscribe(self._sub)
            self._sub = None

    async def _run(self) -> None:
        assert self._sub is not None
        while True:
            verdict = self.observe(await self._sub.get())
            if self._sub.dropped:
                self._metrics.events_dropped.labels("anomaly").inc(self._sub.dropped)
                self._sub.dropped = 0
            if verdict is None:
                continue
            try:
                await self.act(verdict)
            except Exception as exc:  # the observer lives on; the next verdict tries again
                self._failed(verdict, exc)

    def _failed(self, verdict: Verdict, exc: Exception) -> None:
        conn_id, mode = verdict.connection, self.mode
        event(
            log,
            "anomaly_action_failed",
            logging.ERROR,
            connection=conn_id,
            mode=mode,
            error=str(exc),
        )

    def observe(self, ev: Event) -> Verdict | None:
        """Feed one event to the detector; its verdict, if any. Inbound mail is not watched."""
        if not isinstance(ev, Accepted | Outcome) or not ev.connection:
            return None
        if self._rearm and ev.ts >= self._rearm.get(ev.connection, float("inf")):
            del self._rearm[ev.connection]
            self.detector.resume(ev.connection)
        if isinstance(ev, Accepted):
            return self.detector.accepted(ev.ts, ev.connection, ev.sender, list(ev.rcpts))
        return self.detector.outcome(ev.ts, ev.connection, OUTCOME_KINDS[ev.event], ev.code)

    async def act(self, verdict: Verdict) -> None:
        """Suspend (enforce) or record what would have been suspended (shadow)."""
        if self.mode == "shadow":
            await self._would_suspend(verdict)
        else:
            await self._suspend(verdict)

    async def _suspend(self, verdict: Verdict) -> None:
        conn_id = verdict.connection
        conn = self._connections.registry.get(conn_id)
        if conn is None or conn.state != ConnState.CONNECTED:
            _already(conn_id, conn.state.value if conn else "unknown")
            return
        try:
            await self._connections.suspend(conn_id, f"abnormal traffic: {verdict.reason}", ACTOR)
        except ConflictError:  # suspended (or disconnected) by someone else meanwhile
            _already(conn_id, "not connected")
            return
        except Exception:
            self.detector.resume(conn_id)  # try again at its next verdict
            raise
        self._metrics.detector_suspensions.labels("enforce").inc()
        event(log, "anomaly_suspended", logging.WARNING, connection=conn_id, reason=verdict.reason)

    async def _would_suspend(self, verdict: Verdict) -> None:
        self._rearm[verdict.connection] = verdict.ts + SHADOW_REARM_S
        self._metrics.detector_suspensions.labels("shadow").inc()
        conn_id, reason = verdict.connection, verdict.reason
        event(log, "anomaly_would_suspend", logging.WARNING, connection=conn_id, reason=reason)
        await self._connections.audit.record(
            ACTOR, WOULD_SUSPEND, verdict.connection, verdict.reason, details={"ts": verdict.ts}
        )

    async def _on_change(self, old: Connection | None, new: Connection) -> None:
        """A resumed connection is watched afresh."""
        resumed = new.state == ConnState.CONNECTED
        if resumed and old is not None and old.state != ConnState.CONNECTED:
            self.detector.resume(new.id)


def _already(conn_id: str, state: str) -> None:
    event(log, "anomaly_not_suspended_again", logging.INFO, connection=conn_id, state=state)
