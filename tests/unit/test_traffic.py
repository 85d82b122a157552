"""A connection's hourly traffic: the bounded history of counts, and the service over a source."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.admin import AdminApi, add_two_connections, admin_api
from ugem.core.errors import NotFoundError, UsageError
from ugem.core.services.traffic import SPREADS, Status, TrafficService
from ugem.core.traffic_history import TrafficHistory

NOW = 1_767_225_600.0 + 1800  # the FakeClock's start (an hour's start) plus half an hour
HOUR = int(NOW // 3600)


class FakeSource:
    """Counts per hour as given; the usual of every hour 10 ± 2, or nothing (`cold`)."""

    def __init__(self, counts: dict[int, int] | None, cold: bool = False) -> None:
        self.counts, self.cold = counts, cold

    def hourly(self, connection: str, first: int, n: int) -> list[int] | None:
        if self.counts is None:
            return None
        return [self.counts.get(h, 0) for h in range(first, first + n)]

    def usual(self, connection: str, hour: int) -> tuple[float, float] | None:
        return None if self.cold else (10.0, 2.0)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with admin_api(tmp_path) as api:
        api.clock.advance(1800)
        await add_two_connections(api)
        yield api


def service(api: AdminApi, source: FakeSource | None) -> TrafficService:
    return TrafficService(api.services.connections, api.clock, source)


def test_the_history_counts_per_hour_and_forgets_beyond_its_ring() -> None:
    history = TrafficHistory(hours=3)
    assert history.hourly("a", 0, 3) is None
    history.add("a", 10 * 3600 + 5, 2)
    history.add("a", 10 * 3600 + 3599, 3)
    history.add("a", 12 * 3600, 1)
    assert history.hourly("a", 9, 4) == [0, 5, 0, 1]
    history.add("a", 13 * 3600, 4)  # takes hour 10's slot
    assert history.hourly("a", 10, 4) == [0, 0, 1, 4]
    history.add("a", 10 * 3600, 7)  # older than the ring: not counted
    assert history.hourly("a", 10, 4) == [0, 0, 1, 4]


def test_the_history_keeps_at_most_its_connections() -> None:
    history = TrafficHistory(hours=2, max_connections=1)
    history.add("a", 3600, 1)
    history.add("b", 3600, 1)
    assert (history.hourly("b", 1, 1), history.untracked) == (None, 1)
    history.add("b", 4 * 3600, 1)  # "a" silent longer than the ring: forgotten for "b"
    assert history.hourly("a", 1, 1) is None
    assert history.hourly("b", 4, 1) == [1]


async def test_the_day_is_24_hours_against_their_usual(api: AdminApi) -> None:
    traffic = await service(api, FakeSource({HOUR: 30, HOUR - 23: 4})).traffic("a.gov.kz")
    assert (traffic.status, traffic.span, len(traffic.hours)) == (Status.KNOWN, "day", 24)
    assert traffic.hours[0].count == 4 and traffic.total == 34
    assert traffic.hours[-1].start == HOUR * 3600.0
    whole, now = traffic.hours[0], traffic.hours[-1]
    assert (whole.usual, whole.spread) == (10.0, 2.0)
    assert whole.band == (10.0 - SPREADS * 2.0, 10.0 + SPREADS * 2.0)
    assert now.usual == pytest.approx(5.0)  # half of the hour in progress has passed
    assert now.spread == pytest.approx(2.0 * 0.5**0.5)


async def test_a_week_is_168_hours(api: AdminApi) -> None:
    traffic = await service(api, FakeSource({})).traffic("a.gov.kz", "week")
    assert len(traffic.hours) == 168 and traffic.total == 0 and traffic.learned


async def test_what_the_service_cannot_say_it_names(api: AdminApi) -> None:
    assert (await service(api, None).traffic("a.gov.kz")).status == Status.OFF
    assert (await service(api, FakeSource(None)).traffic("a.gov.kz")).status == Status.UNKNOWN
    cold = await service(api, FakeSource({HOUR: 3}, cold=True)).traffic("a.gov.kz")
    assert not cold.learned and cold.hours[-1].band == (0.0, 0.0)
    with pytest.raises(UsageError, match="span: 'month'; expected one of day, week"):
        await service(api, FakeSource({})).traffic("a.gov.kz", "month")
    with pytest.raises(NotFoundError):
        await service(api, FakeSource({})).traffic("nobody.gov.kz")
