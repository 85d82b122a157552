"""`GET /v1/messages/rate`: messages in and out per minute of the last hour, from the index.

Over a real index file: the counts per whole minute, oldest first, with the
first minute's start in Almaty time; the index turned off is 409. (Every
role's access is in test_admin_roles.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.admin import AdminApi, admin_api
from ugem.core.events import Accepted, Outcome
from ugem.core.maillog import entry_of
from ugem.core.message_index import MessageIndex
from ugem.core.services.tokens import Role


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with admin_api(tmp_path, message_index=tmp_path / "maillog.db") as api:
        yield api


async def test_the_rate_per_minute_and_an_index_turned_off(api: AdminApi) -> None:
    service, now = api.services.messages, api.clock.now()
    assert service is not None and service.index is not None
    index = MessageIndex(service.index)
    try:
        accepted = Accepted(now - 90, "Q1", "a.gov.kz", "192.0.2.1", "a@a.gov.kz", ("x@e.org",), 9)
        delivered = Outcome(now - 30, "delivered", "Q1", "a.gov.kz", "192.0.2.1", "x@e.org", 250)
        index.write([e for e in (entry_of(accepted), entry_of(delivered)) if e is not None])
    finally:
        index.close()
    body = (await api.call("GET", "/v1/messages/rate", Role.VIEWER)).json()
    assert body["since"] == "2026-01-01T04:00:00.000000+05:00"
    assert len(body["accepted"]) == len(body["delivered"]) == 60
    assert (body["accepted"][-2:], body["delivered"][-2:]) == ([1, 0], [0, 1])
    service.index = None  # as [log] index_days = 0 makes it
    off = await api.call("GET", "/v1/messages/rate", Role.VIEWER)
    assert off.status_code == 409 and "index_days" in off.text
