"""A connection's page draws its traffic against its usual, or says why it cannot."""

from __future__ import annotations

from pathlib import Path

from tests.support.admin import add_two_connections, admin_api
from tests.support.console import signed_in
from ugem.core.services.tokens import Role


class Burst:
    """Nothing for hours, then 90 recipients in the hour in progress; usually 6 ± 1."""

    def hourly(self, connection: str, first: int, n: int) -> list[int] | None:
        return [0] * (n - 1) + [90]

    def usual(self, connection: str, hour: int) -> tuple[float, float] | None:
        return 6.0, 1.0


async def test_the_chart_of_the_day_and_of_the_week(tmp_path: Path) -> None:
    async with admin_api(tmp_path, traffic=Burst()) as api:
        await add_two_connections(api)
        api.clock.advance(3599)  # the hour in progress nearly over: its usual nearly whole
        async with signed_in(api, Role.VIEWER) as (client, _):
            day = (await client.get("/ui/connections/a.gov.kz")).text
            assert '<svg class="chart"' in day
            assert "Recipients per hour, last 24 hours" in day
            assert "90 recipients in the last 24 hours. This hour so far: 90, usual 4 to 8." in day
            assert 'href="/ui/connections/a.gov.kz?span=week#traffic"' in day
            week = (await client.get("/ui/connections/a.gov.kz?span=week")).text
            assert "Recipients per hour, last 7 days" in week
            assert week.count(",") > day.count(",")  # 168 points, not 24
            odd = (await client.get("/ui/connections/a.gov.kz?span=year")).text
            assert "last 24 hours" in odd  # another span: the day


async def test_the_page_says_when_the_detector_is_off(tmp_path: Path) -> None:
    async with admin_api(tmp_path) as api:
        await add_two_connections(api)
        async with signed_in(api, Role.VIEWER) as (client, _):
            page = (await client.get("/ui/connections/a.gov.kz")).text
            assert "<svg" not in page
            assert "The anomaly detector is off on this node" in page
