"""When each message may start: the rate schedule, the clock, and the plan workers share.

A `RateSchedule` is a list of steps (messages per second, seconds); the last
step may be open-ended. `parse_rate("500")` is a steady 500/s for as long as
the run lasts, `parse_rate("100:10s,200:10s")` is 100/s for 10 s then 200/s for
10 s, after which the schedule (and the run) ends. `due(k)` is the offset from
the start at which message k may begin, or None past the schedule's end:
message k of a step at rate r begins at step start + (k - first)/r, so the
messages of a run are evenly spaced, not sent in bursts.

A `Plan` hands out message numbers 0, 1, 2, ... to the workers, each once, at
its due time on the injected `Clock`, and stops (returns None) at the message
limit, the end of the schedule or the duration limit, whichever comes first.
A number handed out is always sent; the plan never sleeps past the duration
limit. Tests drive it with a clock whose sleep only moves time forward.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

from loadtest.errors import UsageError
from loadtest.spec import parse_duration


class Clock(Protocol):
    def monotonic(self) -> float: ...

    async def sleep_until(self, when: float) -> None: ...


class SystemClock:
    """The real clock: time.monotonic and asyncio.sleep."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep_until(self, when: float) -> None:
        delay = when - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass(frozen=True)
class Step:
    rate: float  # messages per second, > 0
    seconds: float | None  # None: open-ended (the last step only)


@dataclass(frozen=True)
class RateSchedule:
    steps: tuple[Step, ...]

    def due(self, k: int) -> float | None:
        """Offset in seconds from the start at which message k (from 0) may begin."""
        first, start = 0.0, 0.0
        for step in self.steps:
            if step.seconds is None or k < first + step.rate * step.seconds:
                return start + (k - first) / step.rate
            first += step.rate * step.seconds
            start += step.seconds
        return None

    @property
    def seconds(self) -> float | None:
        """Length of the whole schedule; None when it is open-ended."""
        if any(step.seconds is None for step in self.steps):
            return None
        return sum(step.seconds or 0.0 for step in self.steps)

    def describe(self) -> str:
        return ",".join(
            f"{step.rate:g}/s" + (f" for {step.seconds:g}s" if step.seconds else "")
            for step in self.steps
        )


def parse_rate(text: str) -> RateSchedule:
    """`RATE` (steady, open-ended) or `RATE:DURATION[,RATE:DURATION...]` (stepped)."""
    items = [item.strip() for item in text.split(",")]
    steps: list[Step] = []
    for index, item in enumerate(items):
        rate_text, sep, length = item.partition(":")
        try:
            rate = float(rate_text)
        except ValueError:
            rate = 0.0
        if not rate > 0:
            raise UsageError(
                f"bad rate {item!r} in {text!r}: use messages per second, such as 500, "
                "or steps such as 100:10s,200:10s"
            )
        if not sep and index < len(items) - 1:
            raise UsageError(f"bad rate {text!r}: every step but the last needs :DURATION")
        steps.append(Step(rate, parse_duration(length) if sep else None))
    return RateSchedule(tuple(steps))


class Plan:
    """Message numbers for the workers, each at its due time; see the module docstring."""

    def __init__(
        self,
        clock: Clock,
        total: int | None = None,
        schedule: RateSchedule | None = None,
        duration: float | None = None,
    ) -> None:
        self.clock = clock
        self.total = total
        self.schedule = schedule
        self.duration = duration
        self.start = clock.monotonic()
        self.handed_out = 0

    def elapsed(self) -> float:
        return self.clock.monotonic() - self.start

    async def next(self) -> int | None:
        """The next message number, when it is due; None when the run is over."""
        k = self.handed_out
        if self.total is not None and k >= self.total:
            return None
        due = 0.0 if self.schedule is None else self.schedule.due(k)
        if due is None or (self.duration is not None and due >= self.duration):
            return None
        if self.duration is not None and self.elapsed() >= self.duration:
            return None
        self.handed_out += 1
        if due > 0:
            await self.clock.sleep_until(self.start + due)
        return k
