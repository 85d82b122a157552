"""Helpers for the node's long-running asyncio tasks.

`cancel_and_wait(task)` stops a task and waits until it has ended.
`raise_if_cancelled()` raises `CancelledError` when the current task has been
asked to stop. A loop that awaits redis-py calls needs it: redis-py sometimes
swallows the cancellation of a command in flight (seen with XREAD BLOCK: 6
cancellations of 300 were lost), and a loop that then goes round again never
stops, so the node's shutdown would wait for it forever.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait for it to end; its CancelledError is not passed on."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def raise_if_cancelled() -> None:
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
