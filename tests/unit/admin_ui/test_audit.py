"""The Audit page: filtered and paged like /v1/audit (a time window too), with the chain's state."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.admin import AdminApi, admin_api
from tests.support.console import signed_in
from ugem.core import times
from ugem.core.services.tokens import Role

DAY = 86400.0


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with admin_api(tmp_path) as api:
        audit = api.services.audit
        for n in range(60):
            await audit.record("aliya", "paging.test", f"target-{n}", "<b>why</b>")
        api.clock.advance(2 * DAY)
        await audit.record("dana", "connection.suspend", "a.gov.kz", "spam")
        yield api


async def test_the_log_is_filtered_and_paged_like_the_api(api: AdminApi) -> None:
    async with signed_in(api, Role.VIEWER) as (client, _):
        page = (await client.get("/ui/audit", params={"action": "paging.test"})).text
        assert "Found: 60" in page and "target-59" in page and "target-9<" not in page
        assert "&lt;b&gt;why&lt;/b&gt;" in page
        [cursor] = [part for part in page.split('"') if "cursor=" in part]
        assert cursor.startswith("/ui/audit?action=paging.test&amp;cursor=")
        rest = (await client.get(cursor.replace("&amp;", "&"))).text
        assert "target-9<" in rest and "target-59" not in rest
        by_actor = (await client.get("/ui/audit", params={"actor": "dana"})).text
        assert "Found: 1" in by_actor and "connection.suspend" in by_actor
    day = times.local_date(api.clock.now()).isoformat()
    async with signed_in(api, Role.VIEWER) as (client, _):
        today = (await client.get("/ui/audit", params={"since": day})).text
        bad = await client.get("/ui/audit", params={"until": "soon"})
    api_today = await api.call("GET", f"/v1/audit?since={day}", Role.VIEWER)
    assert [r["target"] for r in api_today.json()["items"]] == ["a.gov.kz"]
    assert "a.gov.kz" in today and "target-" not in today
    assert bad.status_code == 422 and "until" in bad.text
    before = await api.call("GET", f"/v1/audit?until={day}T00:00&action=paging.test")
    assert before.json()["total"] == 60


async def test_the_chains_state_is_shown(api: AdminApi, tmp_path: Path) -> None:
    async with signed_in(api, Role.VIEWER) as (client, _):
        page = (await client.get("/ui/audit")).text
    assert "The hash chain is whole:" in page
    with contextlib.closing(sqlite3.connect(tmp_path / "registry.db")) as db, db:
        db.execute("UPDATE audit SET reason = 'edited' WHERE seq = 3")
    async with signed_in(api, Role.VIEWER) as (client, _):
        broken = (await client.get("/ui/audit")).text
    assert "The hash chain is broken (1 problems)" in broken and "record 3" in broken
