"""Rate control: the schedule's due times and the plan's limits, on a clock that never sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from loadtest.errors import UsageError
from loadtest.rate import Plan, RateSchedule, Step, parse_rate


class StepClock:
    """A clock whose sleep moves time forward at once (nothing really waits)."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.sleeps = 0

    def monotonic(self) -> float:
        return self.now

    async def sleep_until(self, when: float) -> None:
        self.sleeps += 1
        self.now = max(self.now, when)


async def _drain(plan: Plan, clock: StepClock) -> list[tuple[int, float]]:
    """Every message number the plan hands out, with the (relative) time it was handed out."""
    handed: list[tuple[int, float]] = []
    while (n := await plan.next()) is not None:
        handed.append((n, clock.now - plan.start))
    return handed


def test_parse_rate_forms() -> None:
    assert parse_rate("500") == RateSchedule((Step(500.0, None),))
    assert parse_rate("100:10s,200:1m") == RateSchedule((Step(100.0, 10.0), Step(200.0, 60.0)))
    assert parse_rate("100:10s,300") == RateSchedule((Step(100.0, 10.0), Step(300.0, None)))
    assert parse_rate("100:10s,200:10s").seconds == 20.0
    assert parse_rate("100").seconds is None


@pytest.mark.parametrize("text", ["", "fast", "0", "-5", "100,200:10s", "100:soon", "100:0s"])
def test_parse_rate_refuses_bad_specs(text: str) -> None:
    with pytest.raises(UsageError):
        parse_rate(text)


def test_steady_rate_spaces_messages_evenly() -> None:
    schedule = parse_rate("500")
    assert [schedule.due(k) for k in (0, 1, 250, 500)] == [0.0, 0.002, 0.5, 1.0]


def test_stepped_rate_changes_pace_at_each_step_and_ends() -> None:
    schedule = parse_rate("100:1s,200:1s")
    assert schedule.due(99) == pytest.approx(0.99)
    assert schedule.due(100) == pytest.approx(1.0)
    assert schedule.due(101) == pytest.approx(1.005)
    assert schedule.due(299) == pytest.approx(1.995)
    assert schedule.due(300) is None


async def test_plan_paces_a_stepped_schedule_on_the_clock() -> None:
    clock = StepClock()
    handed = await _drain(Plan(clock, schedule=parse_rate("100:1s,200:1s")), clock)
    assert [n for n, _ in handed] == list(range(300))
    times = [t for _, t in handed]
    assert times[100] == pytest.approx(1.0)
    assert times[-1] == pytest.approx(1.995)
    in_first_second = sum(1 for t in times if t < 1.0)
    assert in_first_second == 100
    assert len(times) - in_first_second == 200


async def test_plan_stops_at_the_message_count() -> None:
    clock = StepClock()
    handed = await _drain(Plan(clock, total=7, schedule=parse_rate("1000")), clock)
    assert [n for n, _ in handed] == list(range(7))


async def test_plan_stops_at_the_duration_of_a_steady_rate() -> None:
    clock = StepClock()
    handed = await _drain(Plan(clock, schedule=parse_rate("1000"), duration=0.5), clock)
    assert len(handed) == 500
    assert handed[-1][1] < 0.5


async def test_flat_out_plan_never_sleeps_and_honours_the_duration() -> None:
    clock = StepClock()
    plan = Plan(clock, duration=2.0)
    assert [await plan.next() for _ in range(3)] == [0, 1, 2]
    assert clock.sleeps == 0
    clock.now += 2.0
    assert await plan.next() is None
    assert plan.handed_out == 3


async def test_no_number_is_handed_out_twice_to_concurrent_workers() -> None:
    clock = StepClock()
    plan = Plan(clock, total=200, schedule=parse_rate("400"))

    async def worker() -> list[int]:
        return [n async for n in _numbers(plan)]

    results = await asyncio.gather(*(worker() for _ in range(5)))
    everything = sorted(n for result in results for n in result)
    assert everything == list(range(200))


async def _numbers(plan: Plan) -> AsyncIterator[int]:
    while (n := await plan.next()) is not None:
        yield n
