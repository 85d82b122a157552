"""The injected clock.

Everything that asks what time it is (the scheduler, the detector, the spool's
timestamps, state changes) takes a `Clock`, so tests and trace replays run in
their own time. `SystemClock` is the real one; `FakeClock` only moves when told.
Neither raises.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch (UTC), wall-clock time."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for durations."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that moves only by `advance` or `set`; for tests and replay."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self._now = start
        self._mono = 0.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self._now += seconds
        self._mono += seconds

    def set(self, ts: float) -> None:
        self.advance(max(0.0, ts - self._now))
