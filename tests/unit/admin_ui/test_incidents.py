"""The Incidents pages: open first, an incident's evidence, moved by the service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.admin import AdminApi, add_two_connections, admin_api
from tests.support.console import signed_in
from ugem.core.services.incidents import Action, Evidence, IncidentState, Mode
from ugem.core.services.tokens import Role

NUMBERS = {"recipients_5m": 412.0, "usual_recipients_5m": 20.0}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with admin_api(tmp_path) as api:
        await add_two_connections(api)
        incidents = api.services.incidents
        for conn, action in (("a.gov.kz", Action.SUSPENDED), ("b.gov.kz", Action.THROTTLED)):
            evidence = Evidence(api.clock.now(), action, "412 recipients in 5 min", NUMBERS)
            await incidents.record(conn, Mode.ENFORCE, evidence, "detector")
        await incidents.close(2, "test", "old news")  # b.gov.kz's
        yield api


async def test_open_incidents_come_first(api: AdminApi) -> None:
    async with signed_in(api, Role.VIEWER) as (client, _):
        page = (await client.get("/ui/incidents")).text
    assert page.index("Open (1)") < page.index("Acknowledged (0)") < page.index("closed (1)")
    assert page.index('href="/ui/incidents/1"') < page.index('href="/ui/incidents/2"')


async def test_an_incidents_page_shows_its_evidence_and_numbers(api: AdminApi) -> None:
    async with signed_in(api, Role.VIEWER) as (client, _):
        page = (await client.get("/ui/incidents/1")).text
        assert (await client.get("/ui/incidents/99")).status_code == 404
    assert "Incident #1" in page and 'href="/ui/connections/a.gov.kz"' in page
    assert "412 recipients in 5 min" in page
    assert "usual recipients per 5 min at this time of week: 20" in page
    assert "The anomaly detector is off on this node" in page  # no traffic source here
    assert "/ack" not in page and "/close" not in page  # a viewer: no moves


async def test_an_operator_acknowledges_then_closes_with_comments(api: AdminApi) -> None:
    async with signed_in(api, Role.OPERATOR) as (client, csrf):
        page = (await client.get("/ui/incidents/1")).text
        assert 'action="/ui/incidents/1/ack"' in page and 'action="/ui/incidents/1/close"' in page
        asked = await client.post("/ui/incidents/1/ack", data={"csrf": csrf, "comment": "on it"})
        assert "Acknowledge incident #1 (a.gov.kz)?" in asked.text
        assert (await api.services.incidents.get(1)).state == IncidentState.OPEN  # not yet
        form = {"csrf": csrf, "comment": "on it", "confirm": "yes"}
        done = await client.post("/ui/incidents/1/ack", data=form)
        assert done.headers["location"] == "/ui/incidents/1?done=ack"
        page = (await client.get("/ui/incidents/1?done=ack")).text
        assert "The incident is acknowledged." in page and "/ack" not in page
        form = {"csrf": csrf, "comment": "cleaned up", "confirm": "yes"}
        assert (await client.post("/ui/incidents/1/close", data=form)).status_code == 303
        again = await client.post("/ui/incidents/1/close", data=form)
        assert again.status_code == 409  # the service's rule, in a page
    incident = await api.services.incidents.get(1)
    assert (incident.state, incident.comment) == (IncidentState.CLOSED, "cleaned up")
    assert (incident.acknowledged_by, incident.closed_by) == ("api:operator-token",) * 2
