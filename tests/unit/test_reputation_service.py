"""The reputation service (`ugem.core.services.reputation`): the state per address and list.

Over scripted blocklists and a `FakeClock`: each check keeps, per address
and zone, the state, since when (the first check that found it), the last
check and the list's reason; a change logs one WARNING `reputation_changed`
line and reaches the hooks (a first check that finds everything clear is no
change); the gauges say 1 while listed, 0 once clear, and keep the last
verdict through unusable and unknown answers; a check with nothing to check
names the missing key; `watch` checks at once and again each time the
interval has passed on the clock (`ugem.core.tasks.run_every`), never before,
and survives a failed check. The adapter maps the relay's answers state by
state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from relay.reputation import dnsbl
from ugem.adapters.reputation import probe, reputation_service
from ugem.core.clock import FakeClock
from ugem.core.config import Config, NodeConfig, ReputationConfig
from ugem.core.errors import ConfigError
from ugem.core.metrics import Metrics
from ugem.core.services.reputation import (
    Change,
    Listing,
    Probe,
    ReputationService,
    Standing,
)
from ugem.core.tasks import run_every

A, B = "203.0.113.9", "198.51.100.25"
ZEN, COP = "zen.spamhaus.org", "bl.spamcop.net"
HOUR = 3600.0


class Scripted:
    """Blocklists that answer what the test set (clear by default), counting the checks."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, str], tuple[Listing, str]] = {}
        self.calls = 0
        self.fail = False

    def set(self, address: str, zone: str, state: Listing, reason: str = "") -> None:
        self.states[address, zone] = (state, reason)

    async def check(self, addresses: Sequence[str], zones: Sequence[str]) -> list[Probe]:
        self.calls += 1
        if self.fail:
            raise RuntimeError("blocklists broke (test)")
        found = []
        for address in addresses:
            for zone in zones:
                state, reason = self.states.get((address, zone), (Listing.CLEAR, ""))
                codes = ("127.0.0.2",) if state == Listing.LISTED else ()
                found.append(Probe(address, zone, state, reason, codes))
        return found


@pytest.fixture
def lists() -> Scripted:
    return Scripted()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def service(lists: Scripted, clock: FakeClock, metrics: Metrics) -> ReputationService:
    return ReputationService(lists, [A, B], [ZEN, COP], clock, metrics, interval=HOUR)


def gauge(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels or None)


def listed(metrics: Metrics, address: str, zone: str) -> float | None:
    return gauge(metrics, "ugem_reputation_listed", address=address, zone=zone)


def changes_logged(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str, str]]:
    found = []
    for record in caplog.records:
        if getattr(record, "event", None) == "reputation_changed":
            assert record.levelno == logging.WARNING
            f = record.__dict__["fields"]
            found.append((f["address"], f["zone"], f["before"], f["after"]))
    caplog.clear()
    return found


async def test_nothing_is_known_before_the_first_check(service: ReputationService) -> None:
    report = service.report()
    assert (report.addresses, report.zones) == ((A, B), (ZEN, COP))
    assert report.last_check is None and report.standings == ()
    assert not report.listed and not report.complete


async def test_states_are_kept_with_since_and_the_last_check(
    service: ReputationService, lists: Scripted, clock: FakeClock, metrics: Metrics
) -> None:
    started = clock.now()
    lists.set(A, ZEN, Listing.LISTED, "SBL: spam source")
    lists.set(B, COP, Listing.UNKNOWN, "A 25.100.51.198.bl.spamcop.net: timed out")
    report = await service.check()
    assert report.last_check == started
    assert [(s.address, s.zone, s.state) for s in report.standings] == [
        (A, ZEN, Listing.LISTED), (A, COP, Listing.CLEAR),
        (B, ZEN, Listing.CLEAR), (B, COP, Listing.UNKNOWN),
    ]  # fmt: skip
    assert report.standings[0] == Standing(
        A, ZEN, Listing.LISTED, started, started, "SBL: spam source", ("127.0.0.2",)
    )
    assert report.listed and not report.complete
    assert gauge(metrics, "ugem_reputation_last_check_timestamp_seconds") == started

    clock.advance(HOUR)
    lists.set(B, COP, Listing.CLEAR)
    again = await service.check()
    first = again.standings[0]
    assert (first.state, first.since, first.checked_at) == (Listing.LISTED, started, started + HOUR)
    last = again.standings[3]
    assert (last.state, last.since, last.checked_at) == (
        Listing.CLEAR, started + HOUR, started + HOUR
    )  # fmt: skip
    assert service.report() == again


async def test_a_change_logs_one_warning_and_reaches_the_hooks(
    service: ReputationService,
    lists: Scripted,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="ugem.core.services.reputation")
    heard: list[list[Change]] = []

    async def hook(changes: list[Change]) -> None:
        heard.append(changes)

    async def broken(changes: list[Change]) -> None:
        raise RuntimeError("hook broke (test)")

    service.on_change(broken)  # logged; the next hook still hears
    service.on_change(hook)
    await service.check()  # all clear the first time: no change
    assert changes_logged(caplog) == [] and heard == []

    lists.set(A, COP, Listing.LISTED, "reported spam")
    clock.advance(HOUR)
    await service.check()
    assert any(r.__dict__.get("event") == "reputation_hook_failed" for r in caplog.records)
    assert changes_logged(caplog) == [(A, COP, "clear", "listed")]
    [[change]] = heard
    assert change.before == Listing.CLEAR
    assert (change.after.state, change.after.since, change.after.reason) == (
        Listing.LISTED, clock.now(), "reported spam"
    )  # fmt: skip

    clock.advance(HOUR)
    await service.check()  # the same again: no change
    assert changes_logged(caplog) == [] and len(heard) == 1

    lists.set(A, COP, Listing.UNKNOWN, "timed out")
    lists.set(B, ZEN, Listing.UNUSABLE, "127.255.255.254: public resolver")
    await service.check()
    assert changes_logged(caplog) == [(A, COP, "listed", "unknown"), (B, ZEN, "clear", "unusable")]
    assert [(c.before, c.after.state) for c in heard[-1]] == [
        (Listing.LISTED, Listing.UNKNOWN), (Listing.CLEAR, Listing.UNUSABLE),
    ]  # fmt: skip


async def test_a_first_check_that_finds_trouble_is_a_change(
    service: ReputationService, lists: Scripted, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ugem.core.services.reputation")
    lists.set(B, ZEN, Listing.LISTED)
    lists.set(B, COP, Listing.UNUSABLE)
    await service.check()
    assert changes_logged(caplog) == [(B, ZEN, "", "listed"), (B, COP, "", "unusable")]


async def test_the_gauge_keeps_the_last_verdict_through_unanswered_checks(
    service: ReputationService, lists: Scripted, metrics: Metrics
) -> None:
    lists.set(A, ZEN, Listing.UNKNOWN)
    await service.check()
    assert listed(metrics, A, ZEN) == 0  # the series exists from the first check
    assert listed(metrics, A, COP) == 0
    lists.set(A, ZEN, Listing.LISTED)
    await service.check()
    assert listed(metrics, A, ZEN) == 1
    for no_verdict in (Listing.UNKNOWN, Listing.UNUSABLE):
        lists.set(A, ZEN, no_verdict)
        await service.check()
        assert listed(metrics, A, ZEN) == 1
    lists.set(A, ZEN, Listing.CLEAR)
    await service.check()
    assert listed(metrics, A, ZEN) == 0


async def test_nothing_to_check_names_the_missing_key(lists: Scripted, clock: FakeClock) -> None:
    with pytest.raises(ConfigError, match=r"node\.public_addresses"):
        await ReputationService(lists, [], [ZEN], clock).check()
    with pytest.raises(ConfigError, match=r"reputation\.dnsbl_zones"):
        await ReputationService(lists, [A], [], clock).check()
    assert lists.calls == 0
    idle = ReputationService(None, [], [], clock)
    assert not idle.configured and idle.report().standings == ()


async def test_a_failed_check_leaves_the_state_as_it_was(
    service: ReputationService, lists: Scripted, clock: FakeClock
) -> None:
    before = await service.check()
    lists.fail = True
    clock.advance(HOUR)
    with pytest.raises(RuntimeError, match="blocklists broke"):
        await service.check()
    assert service.report() == before


class Ticks:
    """An `asyncio.sleep` stand-in: counts the ticks, yields without waiting."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, seconds: float) -> None:
        assert 0 <= seconds <= 1.0
        self.count += 1
        await asyncio.sleep(0)

    async def wait(self, n: int) -> None:
        """Let `n` more ticks pass (the watch looks at the clock at each)."""
        target = self.count + n
        while self.count < target:
            await asyncio.sleep(0)


async def test_run_every_follows_the_clock_not_the_ticks(clock: FakeClock) -> None:
    runs: list[float] = []

    async def step() -> None:
        runs.append(clock.now())

    ticks = Ticks()
    task = asyncio.create_task(run_every(clock, HOUR, step, tick=1.0, sleep=ticks))
    try:
        await ticks.wait(50)
        assert runs == [clock.now()]  # at once, then not again: no time has passed
        clock.advance(HOUR - 1)
        await ticks.wait(50)
        assert len(runs) == 1
        clock.advance(1)
        await ticks.wait(2)
        assert runs == [clock.now() - HOUR, clock.now()]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_watch_checks_at_once_then_every_interval_and_survives_failures(
    service: ReputationService,
    lists: Scripted,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="ugem.core.services.reputation")
    ticks = Ticks()
    task = asyncio.create_task(service.watch(sleep=ticks))
    try:
        await ticks.wait(5)
        assert service.watching and lists.calls == 1
        assert service.report().last_check == clock.now()
        lists.fail = True
        clock.advance(HOUR)
        await ticks.wait(5)
        assert lists.calls == 2
        assert any(r.__dict__.get("event") == "reputation_check_failed" for r in caplog.records)
        lists.fail = False
        clock.advance(HOUR)
        await ticks.wait(5)
        assert lists.calls == 3 and service.report().last_check == clock.now()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not service.watching


def test_the_adapter_maps_every_state() -> None:
    for state in dnsbl.Listing:
        answer = dnsbl.DnsblAnswer(A, ZEN, state, "why", ("127.0.0.2",))
        assert probe(answer) == Probe(A, ZEN, Listing(state.value), "why", ("127.0.0.2",))
    assert {s.value for s in dnsbl.Listing} == {s.value for s in Listing}


def test_the_node_service_needs_addresses_and_zones(clock: FakeClock) -> None:
    both = Config(node=NodeConfig(public_addresses=[A]), reputation=ReputationConfig())
    assert reputation_service(both, clock).configured
    for config in (
        Config(),  # no addresses by default
        Config(node=NodeConfig(public_addresses=[A]), reputation=ReputationConfig(dnsbl_zones=[])),
    ):
        service = reputation_service(config, clock)
        assert not service.configured and service.blocklists is None
    assert reputation_service(both, clock).interval == ReputationConfig().interval
