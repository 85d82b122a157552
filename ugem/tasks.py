"""Helpers for the node's long-running asyncio tasks.

`raise_if_cancelled()` raises `CancelledError` when the current task has been
asked to stop. A loop that awaits redis-py calls needs it: redis-py sometimes
swallows the cancellation of a command in flight (seen with XREAD BLOCK: 6
cancellations of 300 were lost), and a loop that then goes round again never
stops, so the node's shutdown would wait for it forever.
"""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
