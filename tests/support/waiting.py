"""Waiting for a condition to become true (an event), with a deadline that fails loudly.

This is not waiting for time to pass: the condition is checked often and the
wait ends as soon as it holds; the deadline only bounds a broken run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def eventually(
    condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        await asyncio.sleep(0.02)
