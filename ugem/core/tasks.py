"""Helpers for the node's long-running asyncio tasks.

`cancel_and_wait(task)` stops a task and waits until it has ended.
`raise_if_cancelled()` raises `CancelledError` when the current task has been
asked to stop. A loop that awaits redis-py calls needs it: redis-py sometimes
swallows the cancellation of a command in flight (seen with XREAD BLOCK: 6
cancellations of 300 were lost), and a loop that then goes round again never
stops, so the node's shutdown would wait for it forever.
`run_every(clock, interval, step)` runs `step` at once and then each time
`interval` seconds have passed on `clock` (the node's injected clock, so a
test's `FakeClock` decides when the next run is due), looking at the clock
every `tick` seconds of real time; it runs until cancelled, and what `step`
raises ends it (wrap `step` to survive its failures).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from ugem.core.clock import Clock

TICK = 1.0  # seconds of real time between two looks at the clock in `run_every`


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait for it to end; its CancelledError is not passed on."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def raise_if_cancelled() -> None:
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def run_every(
    clock: Clock,
    interval: float,
    step: Callable[[], Awaitable[object]],
    tick: float = TICK,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """`step()` now, then whenever `interval` seconds of `clock` have passed since it began."""
    while True:
        began = clock.now()
        await step()
        raise_if_cancelled()
        while clock.now() < began + interval:
            await sleep(max(0.0, min(tick, began + interval - clock.now())))
            raise_if_cancelled()
