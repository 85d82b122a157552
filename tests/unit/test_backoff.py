"""relay.deliver.backoff: a destination that answers rate-limit replies is held back.

Time is a FakeClock: nothing here sleeps. The pool's slots are driven by tasks that
only yield to the loop (`asyncio.sleep(0)`), never wait for time.
"""

from __future__ import annotations

import asyncio

import pytest

from relay.deliver import backoff as backoff_module
from relay.deliver.backoff import Backoff
from relay.deliver.pool import SessionPool
from ugem.core.clock import FakeClock
from ugem.core.config import DeliveryConfig
from ugem.core.metrics import Metrics

KEY, OTHER = "mx:example.org", "mx:example.net"
DELAY, MAX_DELAY = 30.0, 120.0


def make(concurrency: int = 8, recovery: int = 2) -> tuple[Backoff, FakeClock, Metrics]:
    config = DeliveryConfig(
        concurrency_per_destination=concurrency,
        rate_limit_delay=DELAY,
        rate_limit_max_delay=MAX_DELAY,
        rate_limit_recovery=recovery,
    )
    clock, metrics = FakeClock(), Metrics()
    return Backoff(config, clock, metrics), clock, metrics


def limited(backoff: Backoff, key: str = KEY) -> None:
    """An attempt admitted now hears a rate-limit reply."""
    admission = backoff.admit(key)
    assert admission.wait == 0.0
    backoff.report(key, admission.epoch, rate_limited=True, delivered=False)


def delivered(backoff: Backoff, key: str = KEY) -> None:
    """An attempt admitted now delivers."""
    admission = backoff.admit(key)
    assert admission.wait == 0.0, f"not admitted: wait {admission.wait}"
    backoff.report(key, admission.epoch, rate_limited=False, delivered=True)


def gauge(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("ugem_delivery_backoff_destinations")


def test_a_destination_never_rate_limited_is_admitted_at_full_concurrency() -> None:
    backoff, _, _ = make()
    for _ in range(100):
        assert backoff.admit(KEY).wait == 0.0
    backoff.report(KEY, 0, rate_limited=False, delivered=True)
    assert (backoff.limit(KEY), backoff.spacing(KEY), backoff.held_back()) == (8, 0.0, 0)


def test_a_rate_limit_reply_halves_concurrency_pauses_then_spaces_attempts() -> None:
    backoff, clock, metrics = make()
    limited(backoff)
    assert (backoff.limit(KEY), backoff.spacing(KEY)) == (4, DELAY)
    assert backoff.admit(KEY).wait == DELAY  # paused
    assert backoff.admit(OTHER).wait == 0.0  # another destination is not
    assert backoff.limit(OTHER) == 8
    clock.advance(DELAY - 1)
    assert backoff.admit(KEY).wait == 1.0
    clock.advance(1)
    assert backoff.admit(KEY).wait == 0.0  # one attempt...
    assert backoff.admit(KEY).wait == DELAY  # ...then the next one a spacing later
    clock.advance(DELAY)
    assert backoff.admit(KEY) == (0.0, 1, DELAY)
    assert gauge(metrics) == 1


def test_further_replies_double_the_spacing_up_to_the_cap_and_halve_down_to_one() -> None:
    backoff, clock, _ = make()
    seen = []
    for _ in range(6):
        clock.advance(MAX_DELAY)  # past any pause: the attempt is admitted
        limited(backoff)
        seen.append((backoff.limit(KEY), backoff.spacing(KEY)))
    assert seen == [(4, 30.0), (2, 60.0), (1, 120.0), (1, 120.0), (1, 120.0), (1, 120.0)]


def test_replies_of_attempts_in_flight_before_the_cut_count_once() -> None:
    backoff, _, _ = make()
    in_flight = [backoff.admit(KEY) for _ in range(5)]  # five sessions at once
    for admission in in_flight:  # all hear 421
        backoff.report(KEY, admission.epoch, rate_limited=True, delivered=False)
    assert (backoff.limit(KEY), backoff.spacing(KEY)) == (4, DELAY)
    backoff.report(KEY, in_flight[0].epoch, rate_limited=False, delivered=True)
    assert backoff.spacing(KEY) == DELAY  # nor does their success ease it


def test_a_cut_elsewhere_does_not_make_a_first_reply_stale() -> None:
    backoff, _, _ = make()
    here = backoff.admit(KEY)
    limited(backoff, OTHER)
    backoff.report(KEY, here.epoch, rate_limited=True, delivered=False)
    assert backoff.limit(KEY) == 4


def test_successes_step_back_and_the_destination_is_forgotten_when_whole() -> None:
    backoff, clock, metrics = make(concurrency=8, recovery=2)
    for _ in range(3):
        clock.advance(MAX_DELAY)
        limited(backoff)
    assert (backoff.limit(KEY), backoff.spacing(KEY)) == (1, 120.0)
    steps = []
    while backoff.held_back():
        clock.advance(backoff.admit(KEY).wait)
        delivered(backoff)
        steps.append((backoff.limit(KEY), backoff.spacing(KEY)))
    # one doubling undone per delivery; one session back per 2 deliveries
    assert steps == [
        (1, 60.0),
        (2, 30.0),
        (2, 0.0),
        (3, 0.0),
        (3, 0.0),
        (4, 0.0),
        (4, 0.0),
        (5, 0.0),
        (5, 0.0),
        (6, 0.0),
        (6, 0.0),
        (7, 0.0),
        (7, 0.0),
        (8, 0.0),  # whole again: forgotten
    ]
    assert gauge(metrics) == 0


def test_a_rate_limit_reply_while_recovering_cuts_again() -> None:
    backoff, clock, _ = make(concurrency=8, recovery=1)
    limited(backoff)
    clock.advance(DELAY)
    delivered(backoff)
    assert (backoff.limit(KEY), backoff.spacing(KEY)) == (5, 0.0)
    limited(backoff)
    assert (backoff.limit(KEY), backoff.spacing(KEY)) == (2, DELAY)
    assert backoff.admit(KEY).wait == DELAY


def test_a_destination_left_alone_is_forgotten() -> None:
    backoff, clock, metrics = make()
    limited(backoff)
    clock.advance(backoff.forget_after)
    assert backoff.admit(KEY).wait == 0.0
    assert (backoff.limit(KEY), backoff.held_back(), gauge(metrics)) == (8, 0, 0)


def test_the_destinations_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backoff_module, "MAX_DESTINATIONS", 3)
    backoff, clock, _ = make()
    for n in range(5):
        clock.advance(1)
        limited(backoff, f"mx:d{n}.example")
    assert backoff.held_back() == 3
    assert backoff.limit("mx:d0.example") == 8  # the oldest were forgotten
    assert backoff.limit("mx:d4.example") == 4


async def test_the_pool_gives_a_destination_only_the_sessions_its_back_off_allows() -> None:
    backoff, clock, metrics = make(concurrency=4, recovery=1)
    config = DeliveryConfig(concurrency_per_destination=4)
    pool = SessionPool(config, "gw.test", metrics, clock, backoff=backoff)
    limited(backoff)  # 4 -> 2
    inside: list[int] = []
    release = asyncio.Event()

    async def attempt(n: int) -> None:
        async with pool.destination(KEY):
            inside.append(n)
            await release.wait()

    async def other() -> None:
        async with pool.destination(OTHER):
            inside.append(-1)
            await release.wait()

    tasks = [asyncio.create_task(attempt(n)) for n in range(4)]
    tasks += [asyncio.create_task(other()) for _ in range(4)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert sorted(inside) == [-1, -1, -1, -1, 0, 1]  # two of four; the other route all four
    clock.advance(DELAY)
    delivered(backoff)  # a session given back: taken up at the next release
    release.set()
    await asyncio.gather(*tasks)
    assert sorted(inside) == [-1, -1, -1, -1, 0, 1, 2, 3]
    await pool.close()
