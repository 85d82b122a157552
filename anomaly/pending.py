"""Verdicts reached while the store is unreachable: acted on at once here, recorded later.

A verdict needs the store twice: to claim it (one process of the gateway
acts on it) and to record it (the incident, the suspension, the audit entry,
the owner's notice). While the store is down the enforcer acts on it in this
node alone (a throttle on this node's board, a suspension laid over the
registry's view: `Registry.hold_locally`) and hands it to `PendingVerdicts`,
which tries, every `RETRY_S` seconds of the event loop, to finish it: claim it
(unless this process already holds the claim) and, if the claim is ours,
record it through the enforcer's `record`; then `settle` ends what was done
here alone (the local hold lifts; the store's state serves). So a verdict of
the outage is one suspension, one incident and one notice once the store is
back, as a verdict the claim settles at once.

A `StoreError` while finishing keeps the verdict pending (and its claim, if
taken), to try again; any other error is logged and the verdict dropped (it
is settled, so no connection stays held by a verdict nobody will record). At
most `MAX_PENDING` verdicts wait; an older one is dropped (and settled) for a
newer. Pending verdicts live in memory: a node restarted during the outage
forgets them (and its local holds), and its detector judges afresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from anomaly.detector import Verdict
from ugem.core.errors import StoreError
from ugem.core.log import event
from ugem.core.tasks import cancel_and_wait

log = logging.getLogger(__name__)

RETRY_S: Final = 1.0  # seconds between attempts to finish the pending verdicts
MAX_PENDING: Final = 1000  # verdicts waiting for the store at most

Claim = Callable[[str], Awaitable[bool]]
Finish = Callable[[Verdict], Awaitable[None]]


@dataclass(slots=True)
class _Pending:
    verdict: Verdict
    claimed: bool  # this process holds the verdict's claim already


class PendingVerdicts:
    def __init__(
        self, claim: Claim, record: Finish, settle: Finish, retry_s: float = RETRY_S
    ) -> None:
        self._claim, self._record, self._settle = claim, record, settle
        self._retry_s = retry_s
        self._waiting: OrderedDict[str, _Pending] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._finishing = asyncio.Lock()  # one pass at a time: a verdict is recorded once

    def __len__(self) -> int:
        return len(self._waiting)

    async def add(self, key: str, verdict: Verdict, claimed: bool = False) -> None:
        """Keep `verdict` (claim key `key`) to record when the store is back."""
        self._waiting[key] = _Pending(verdict, claimed)
        self._waiting.move_to_end(key)
        while len(self._waiting) > MAX_PENDING:
            _, dropped = self._waiting.popitem(last=False)
            event(log, "anomaly_pending_dropped", logging.WARNING, **_fields(dropped.verdict))
            await self._settle(dropped.verdict)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._retry(), name="anomaly-pending")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _retry(self) -> None:
        while self._waiting:
            await asyncio.sleep(self._retry_s)
            await self.finish()

    async def finish(self) -> int:
        """Try to finish every pending verdict, oldest first; how many were finished.
        Stops at the first one the store cannot take (the rest would fail as well)."""
        async with self._finishing:
            return await self._finish_all()

    async def _finish_all(self) -> int:
        done = 0
        for key in list(self._waiting):
            pending = self._waiting.get(key)
            if pending is None:  # dropped meanwhile (MAX_PENDING)
                continue
            try:
                await self._finish(key, pending)
            except StoreError:
                return done
            except Exception as exc:  # a verdict nobody can record: dropped, not held
                fields = _fields(pending.verdict)
                event(log, "anomaly_pending_failed", logging.ERROR, error=str(exc), **fields)
            self._waiting.pop(key, None)
            await self._settle(pending.verdict)
            done += 1
        return done

    async def _finish(self, key: str, pending: _Pending) -> None:
        if not pending.claimed:
            pending.claimed = await self._claim(key)
            if not pending.claimed:
                event(log, "anomaly_verdict_claimed_elsewhere", **_fields(pending.verdict))
                return
        await self._record(pending.verdict)
        event(log, "anomaly_pending_recorded", **_fields(pending.verdict))


def _fields(verdict: Verdict) -> dict[str, Any]:
    return {"connection": verdict.connection, "action": verdict.action}
