"""The session's one re-armed read timer (relay.accept.deadline), on the loop's own time.

Each wait is bounded as `asyncio.timeout()` bounds it (TimeoutError once the
deadline passes, a foreign cancel left a CancelledError), with one timer
handle for waits in a row. Waits are on futures nobody completes: the
deadline's timer is what ends them, and the loop's time says when.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from relay.accept.deadline import SLACK, ReadDeadline

SHORT = 0.05


def current() -> asyncio.Task[Any]:
    task = asyncio.current_task()
    assert task is not None
    return task


def counting_timers(monkeypatch: pytest.MonkeyPatch) -> list[asyncio.TimerHandle]:
    """The timers every `call_at` of the loop sets from now on."""
    loop = asyncio.get_running_loop()
    asked: list[asyncio.TimerHandle] = []
    call_at = loop.call_at

    def spy(when: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        asked.append(call_at(when, callback))
        return asked[-1]

    monkeypatch.setattr(loop, "call_at", spy)
    return asked


async def never(deadline: ReadDeadline, seconds: float) -> None:
    """Wait, bounded, for a future nobody completes."""
    with deadline.within(seconds):
        await asyncio.get_running_loop().create_future()


async def done(deadline: ReadDeadline, seconds: float) -> None:
    """A bounded wait that ends at once."""
    future = asyncio.get_running_loop().create_future()
    future.set_result(None)
    with deadline.within(seconds):
        await future


async def test_a_wait_past_its_deadline_is_a_timeout() -> None:
    loop, deadline = asyncio.get_running_loop(), ReadDeadline(current())
    start = loop.time()
    with pytest.raises(TimeoutError):
        await never(deadline, SHORT)
    assert loop.time() - start >= SHORT - SLACK
    assert current().cancelling() == 0  # its cancel taken back, as asyncio.timeout does
    deadline.close()


async def test_waits_in_a_row_share_one_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = counting_timers(monkeypatch)
    deadline = ReadDeadline(current())
    for _ in range(100):
        await done(deadline, 300)
    assert len(asked) == 1
    deadline.close()


async def test_a_later_wait_moves_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    loop, deadline = asyncio.get_running_loop(), ReadDeadline(current())
    await done(deadline, SHORT)  # the timer is set for SHORT from now
    asked = counting_timers(monkeypatch)
    start = loop.time()
    with pytest.raises(TimeoutError):
        await never(deadline, 4 * SHORT)  # it fires at SHORT, and sets itself for the rest
    assert loop.time() - start >= 4 * SHORT - SLACK
    assert len(asked) == 1 and asked[0].when() >= start + 4 * SHORT - SLACK
    deadline.close()


async def test_an_earlier_deadline_sets_the_timer_again() -> None:
    loop, deadline = asyncio.get_running_loop(), ReadDeadline(current())
    await done(deadline, 3)
    start = loop.time()
    with pytest.raises(TimeoutError):
        await never(deadline, SHORT)  # DATA's timeout shorter than the command's
    assert SHORT - SLACK <= loop.time() - start < 2
    deadline.close()


async def test_the_timer_lapses_between_waits() -> None:
    loop, deadline = asyncio.get_running_loop(), ReadDeadline(current())
    await done(deadline, SHORT)
    unbounded = loop.create_future()
    loop.call_at(loop.time() + 3 * SHORT, unbounded.set_result, "answered")
    assert await unbounded == "answered"  # the timer fired meanwhile, and left it alone
    with pytest.raises(TimeoutError):  # the next wait sets a timer of its own
        await never(deadline, SHORT)
    deadline.close()


async def test_a_cancel_of_its_own_stays_a_cancel() -> None:
    """A hang-up cancels the session's task: that is no timeout, even as the timer fires."""
    loop = asyncio.get_running_loop()
    waited = loop.create_future()

    async def session() -> None:
        deadline = ReadDeadline(current())
        with deadline.within(SHORT):
            await waited

    task = loop.create_task(session())
    waited.add_done_callback(lambda _: task.cancel())  # a second cancel, right after the timer's
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


async def test_a_cancel_before_the_deadline_is_a_cancel() -> None:
    loop = asyncio.get_running_loop()
    deadline: list[ReadDeadline] = []

    async def session() -> None:
        deadline.append(ReadDeadline(current()))
        await never(deadline[0], 300)

    task = loop.create_task(session())
    loop.call_soon(task.cancel)
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline[0].close()


async def test_close_drops_the_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = counting_timers(monkeypatch)
    deadline = ReadDeadline(current())
    await done(deadline, 300)
    assert len(asked) == 1 and not asked[0].cancelled()
    deadline.close()  # the session is over: nothing holds it for 300 s
    assert asked[0].cancelled()
