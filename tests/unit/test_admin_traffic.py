"""`/v1/connections/{id}/traffic`: the hours as JSON, the detector's absence said, problems."""

from __future__ import annotations

from pathlib import Path

from tests.support.admin import add_two_connections, admin_api
from ugem.core.services.tokens import Role


class Steady:
    """Five recipients every hour, usually 6 ± 1."""

    def hourly(self, connection: str, first: int, n: int) -> list[int] | None:
        return [5] * n

    def usual(self, connection: str, hour: int) -> tuple[float, float] | None:
        return 6.0, 1.0


async def test_the_hours_of_a_day_and_a_week(tmp_path: Path) -> None:
    async with admin_api(tmp_path, traffic=Steady()) as api:
        await add_two_connections(api)
        api.clock.advance(3600)  # the hour in progress has just ended: a whole one
        day = await api.call("GET", "/v1/connections/a.gov.kz/traffic", Role.VIEWER)
        assert day.status_code == 200, day.text
        body = day.json()
        assert (body["status"], body["span"], body["total"]) == ("known", "day", 5 * 24)
        first = body["hours"][0]
        assert first["start"].endswith("+05:00")
        assert (first["usual"], first["spread"], first["low"], first["high"]) == (6, 1, 4, 8)
        week = await api.call("GET", "/v1/connections/a.gov.kz/traffic?span=week", Role.VIEWER)
        assert len(week.json()["hours"]) == 168


async def test_off_unknown_and_bad_requests(tmp_path: Path) -> None:
    async with admin_api(tmp_path) as api:  # no source: the detector is off
        await add_two_connections(api)
        off = await api.call("GET", "/v1/connections/a.gov.kz/traffic", Role.VIEWER)
        assert off.json() | {"hours": None} == {
            "connection": "a.gov.kz", "span": "day", "status": "off", "total": 0, "hours": None
        }  # fmt: skip
        bad = await api.call("GET", "/v1/connections/a.gov.kz/traffic?span=month", Role.VIEWER)
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
        assert "day" in bad.text and "week" in bad.text
        gone = await api.call("GET", "/v1/connections/x.gov.kz/traffic", Role.VIEWER)
        assert gone.status_code == 404
        assert gone.headers["content-type"] == "application/problem+json"
