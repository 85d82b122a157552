"""The Queue page: summary and search by the API's filter; bulk actions counted, then confirmed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.queue.message import QueuedMessage, QueueState
from tests.support.admin import AdminApi, admin_api
from tests.support.console import signed_in
from ugem.core.queue_filter import Criteria
from ugem.core.services.tokens import Role

HOUR = 3600.0


def queued(queue_id: str, rcpt: str, connection: str, at: float) -> QueuedMessage:
    data = b"From: <a@b.gov.kz>\r\nSubject: hi\r\n\r\nbody\r\n"
    return QueuedMessage(
        queue_id, "a@b.gov.kz", [rcpt], data, len(data), connection, "192.0.2.2", at,
        QueueState.DEFERRED,
    )  # fmt: skip


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with admin_api(tmp_path) as api:
        now = api.clock.now()
        await api.spool.commit(queued("MAILRU000001", "x@mail.ru", "a.gov.kz", now - 2 * HOUR))
        await api.spool.commit(queued("MAILRU000002", "y@mail.ru", "a.gov.kz", now - 60))
        await api.spool.commit(queued("GMAIL0000001", "<z>@gmail.com", "b.gov.kz", now - 60))
        yield api


async def test_the_summary_and_the_list_take_the_apis_filter(api: AdminApi) -> None:
    async with signed_in(api, Role.VIEWER) as (client, _):
        page = (await client.get("/ui/queue")).text
        assert "Messages (3)" in page
        assert '<th scope="row">mail.ru</th><td>2</td><td>1</td>' in page  # 0-5 min: 1
        assert "&lt;z&gt;@gmail.com" in page
        found = await client.get("/ui/queue", params={"domain": "mail.ru", "older_than": "1h"})
        assert "Messages (1)" in found.text and "MAILRU000001" in found.text
        assert "MAILRU000002" not in found.text
        assert 'value="1h"' in found.text  # the filter is given back
        by_origin = (await client.get("/ui/queue", params={"by": "connection"})).text
        assert '<th scope="row">b.gov.kz</th>' in by_origin
        bad = await client.get("/ui/queue", params={"older_than": "3x"})
        assert bad.status_code == 422 and "older_than" in bad.text
        assert "queue/actions" not in found.text  # a viewer: no action


async def test_a_bulk_hold_is_counted_first_then_confirmed_and_audited(api: AdminApi) -> None:
    async with signed_in(api, Role.OPERATOR) as (client, csrf):
        assert "queue/actions" not in (await client.get("/ui/queue")).text  # no filter yet
        assert "queue/actions" in (await client.get("/ui/queue?domain=mail.ru")).text
        form = {"csrf": csrf, "domain": "mail.ru", "action": "hold", "reason": "<i>ddos</i>"}
        asked = await client.post("/ui/queue/actions", data=form)
        assert "2 messages will be held" in asked.text and "domain=mail.ru" in asked.text
        assert "&lt;i&gt;ddos&lt;/i&gt;" in asked.text
        assert await api.services.queue.count(Criteria(state="held")) == 0  # not yet
        done = await client.post("/ui/queue/actions", data=form | {"confirm": "yes"})
        assert done.headers["location"] == "/ui/queue?domain=mail.ru&done=hold&n=2"
        page = (await client.get(done.headers["location"])).text
        assert "Held: 2." in page and page.count(">held</span>") == 2
        everything = {"csrf": csrf, "action": "delete", "reason": "x", "confirm": "yes"}
        refused = await client.post("/ui/queue/actions", data=everything)
        assert refused.status_code == 422  # no filter: the whole queue is not for the page
        odd = await client.post("/ui/queue/actions", data=form | {"action": "bounce"})
        assert odd.status_code == 422
    assert await api.services.queue.count(Criteria(state="held")) == 2
    [record] = await api.services.audit.list(action="queue.bulk-hold")
    assert (record.entry.actor, record.entry.reason) == ("api:operator-token", "<i>ddos</i>")
