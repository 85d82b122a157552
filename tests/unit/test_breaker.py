"""The circuit breaker: closed, tripped by a failure, probed at its interval, reset by a
success; on a FakeClock, never waiting for time."""

from __future__ import annotations

from ugem.core.breaker import Breaker
from ugem.core.clock import FakeClock


def test_closed_until_a_failure_then_probed_only_at_its_interval() -> None:
    clock = FakeClock()
    breaker = Breaker(clock, probe_interval=2.0)
    assert breaker.closed and breaker.probe_due() and breaker.open_for() == 0.0

    assert breaker.trip("connection refused") is True  # a change: the caller logs it
    assert not breaker.closed and breaker.reason == "connection refused"
    assert not breaker.probe_due()  # the failure was a try
    clock.advance(1.9)
    assert not breaker.probe_due()
    clock.advance(0.1)
    assert breaker.probe_due()
    breaker.probing()
    assert not breaker.probe_due()

    assert breaker.trip("timed out") is False  # still open: no second line
    assert breaker.reason == "timed out"
    assert breaker.open_for() == 2.0  # since the first failure, not the last

    assert breaker.reset() is True
    assert breaker.closed and breaker.reason == "" and breaker.probe_due()
    assert breaker.reset() is False  # closed already: nothing to say


def test_a_failed_probe_waits_a_whole_interval_again() -> None:
    clock = FakeClock()
    breaker = Breaker(clock, probe_interval=5.0)
    breaker.trip("down")
    clock.advance(5.0)
    assert breaker.probe_due()
    breaker.probing()
    clock.advance(3.0)
    breaker.trip("still down")  # the probe's answer came 3 s later
    clock.advance(4.9)
    assert not breaker.probe_due()
    clock.advance(0.1)
    assert breaker.probe_due()
