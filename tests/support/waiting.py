"""Waiting for a condition to become true (an event), with a deadline that fails loudly.

This is not waiting for time to pass: the condition is checked often and the
wait ends as soon as it holds; the deadline only bounds a broken run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        await asyncio.sleep(0.02)


async def eventually_read(
    read: Callable[[], Awaitable[T]],
    condition: Callable[[T], bool],
    timeout: float = 30.0,
    what: str = "condition",
) -> T:
    """The first value `read()` gives that meets `condition` (read again until one does):
    for state another process changes a moment after the event a test saw (a message
    the sink took is removed from the spool once the relay hears the reply)."""
    deadline = time.monotonic() + timeout
    while not condition(value := await read()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s: {value!r}")
        await asyncio.sleep(0.02)
    return value
