"""A destination's concurrency slots (`relay.deliver.pool.Slots`): at most the limit at
once, first come first served, one wake-up per freed slot, cancellation that loses no slot.

Before, leaving woke every waiter to look again: with hundreds of attempts queued for
one destination (500 client connections), each delivery cost work in proportion to the
queue, and end to end fell below the accept rate. `test_a_freed_slot_wakes_one_waiter`
counts the limit's reads, which that version made quadratic.
"""

from __future__ import annotations

import asyncio

from relay.deliver.pool import Slots


class Limit:
    """A limit that can be changed and counts how often it is read."""

    def __init__(self, value: int) -> None:
        self.value, self.reads = value, 0

    def __call__(self) -> int:
        self.reads += 1
        return self.value


async def hold(slots: Slots, name: int, order: list[int], busy: list[int]) -> None:
    async with slots:
        order.append(name)
        busy.append(slots.held)
        await asyncio.sleep(0)


async def test_at_most_the_limit_at_once_and_first_come_first_served() -> None:
    slots, order, busy = Slots(Limit(3)), list[int](), list[int]()
    await asyncio.gather(*(hold(slots, i, order, busy) for i in range(100)))
    assert order == list(range(100)) and max(busy) == 3 and slots.held == 0


async def test_a_freed_slot_wakes_one_waiter() -> None:
    limit = Limit(2)
    slots: Slots = Slots(limit)
    await asyncio.gather(*(hold(slots, i, [], []) for i in range(300)))
    assert limit.reads < 5 * 300  # waking every waiter at each exit read it about 45,000 times


async def test_a_cancelled_waiter_takes_no_slot_and_passes_on_one_it_was_given() -> None:
    slots, order, gate = Slots(Limit(1)), list[int](), asyncio.Event()
    waiting: list[asyncio.Task[None]] = []

    async def one(i: int) -> None:
        async with slots:
            order.append(i)
            if i == 0:
                await gate.wait()
        if i == 0:  # the slot was just handed to 2, which has not run yet
            waiting[1].cancel()

    first = asyncio.create_task(one(0))
    await asyncio.sleep(0)  # the first holds the slot until the gate opens
    waiting += [asyncio.create_task(one(i)) for i in (1, 2, 3)]
    await asyncio.sleep(0)  # 1, 2 and 3 wait, in that order
    waiting[0].cancel()  # 1 is cancelled while it waits: no slot is taken for it
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(first, *waiting, return_exceptions=True)
    assert order == [0, 3] and slots.held == 0


async def test_a_raised_limit_is_seen_at_the_next_exit() -> None:
    limit = Limit(1)
    slots, busy = Slots(limit), list[int]()
    gate = asyncio.Event()

    async def one(i: int) -> None:
        async with slots:
            busy.append(slots.held)
            if i == 0:
                await gate.wait()
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(one(i)) for i in range(6)]
    await asyncio.sleep(0)
    limit.value = 3
    gate.set()
    await asyncio.gather(*tasks)
    assert max(busy) == 3 and slots.held == 0
