"""A session's read deadline: one timer a session, moved by each wait, not one a command.

`asyncio.timeout()` around every read of a session (each command line, the text
of DATA) made and cancelled a timer handle per command: about 3 % of the event
loop's time at one message a session (BENCHMARKS.md). `ReadDeadline` bounds the
same waits of one task with one `loop.call_at` handle, made at the first wait
and cancelled by `close()` at the session's end.

`with deadline.within(seconds):` around a wait sets the deadline (the loop's
time plus `seconds`); leaving the block disarms it. The handle stays where it
is set unless a deadline is earlier, then it is set again. When it fires it
looks: no wait armed, it lapses (the next wait sets a new one); the deadline
not yet reached (a later wait moved it), it sets itself for what is left; the
deadline reached, it cancels the task. The block then turns that cancellation
into `TimeoutError`, as `asyncio.timeout()` does: only when no other
cancellation of the task is pending (a hang-up's cancel still ends the task
with `CancelledError`). Within the block the task must await only the wait it
bounds: the timer cancels the task, whatever it awaits.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

# A deadline this close is reached: timers fire on a millisecond tick (uvloop), or up to
# the clock's resolution early (asyncio), and need not be set again for what is left.
SLACK = 0.001


class ReadDeadline:
    """Bounds the waits of one task, one at a time, with one re-armed timer."""

    __slots__ = ("_armed", "_at", "_cancelling", "_fired", "_handle", "_loop", "_task", "_when")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self._task = task
        self._loop = task.get_loop()
        self._armed = False
        self._when = 0.0  # the loop's time the armed wait ends
        self._at = 0.0  # the loop's time the handle is set for
        self._handle: asyncio.TimerHandle | None = None
        self._fired = False  # the handle cancelled the task, not yet taken back
        self._cancelling = 0  # the task's cancel requests pending when the wait began

    def within(self, seconds: float) -> ReadDeadline:
        """Arm the deadline `seconds` from now, for a `with` block around one wait."""
        when = self._loop.time() + seconds
        self._when, self._armed, self._fired = when, True, False
        self._cancelling = self._task.cancelling()
        handle = self._handle
        if handle is None or when < self._at:
            if handle is not None:
                handle.cancel()
            self._set(when)
        return self

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._armed = False
        if self._fired and exc_type is asyncio.CancelledError:
            self._fired = False
            if self._task.uncancel() <= self._cancelling:  # ours alone: the wait timed out
                raise TimeoutError from exc

    def close(self) -> None:
        """The session is over: drop the timer."""
        self._armed = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _set(self, when: float) -> None:
        self._at = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        if not self._armed:
            return  # between waits: the next one sets the timer again
        if self._when - self._loop.time() > SLACK:
            self._set(self._when)  # a later wait moved the deadline
            return
        self._armed, self._fired = False, True
        self._task.cancel()
