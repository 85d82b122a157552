"""Every list of the admin API is a page: items, total, next_cursor; keyset, not offset.

Paging through a list with `limit` and each page's `next_cursor` gives every
item once in the list's order, and items added while paging neither repeat an
item nor push one out of the next page: for the connections (by id, kept in
memory), the queue (by queue id, paged by the spools themselves) and the
audit log (newest first, paged by the store). Every list route answers the
same shape; a cursor that is not the list's own, and a limit out of 1..1000,
are 422 naming the parameter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relay.queue.message import QueuedMessage, QueueState
from tests.support.admin import AdminApi, admin_api
from tests.support.connections import plain
from ugem.core.services.tokens import Role

LISTS = [
    "/v1/connections", "/v1/queue", "/v1/audit", "/v1/tokens", "/v1/applications",
    "/v1/incidents", "/v1/overrides", "/v1/reputation/standings", "/v1/reputation/complaints",
]  # fmt: skip


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with admin_api(tmp_path) as api:
        yield api


async def page(api: AdminApi, path: str, limit: int, cursor: str | None) -> dict[str, Any]:
    query = f"limit={limit}" + ("" if cursor is None else f"&cursor={cursor}")
    answer = await api.call("GET", f"{path}{'&' if '?' in path else '?'}{query}", Role.ADMIN)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def message(queue_id: str) -> QueuedMessage:
    data = b"Subject: hi\r\n\r\nbody\r\n"
    return QueuedMessage(
        queue_id, "a@a.gov.kz", ["x@example.org"], data, len(data), "a.gov.kz", "192.0.2.10",
        1.0, QueueState.DEFERRED,
    )  # fmt: skip


async def test_every_list_answers_items_total_and_next_cursor(api: AdminApi) -> None:
    paths = api.app.openapi()["paths"]
    listed = {p for p, ops in paths.items() if "get" in ops and "cursor" in str(ops["get"])}
    assert listed == set(LISTS)
    for path in LISTS:
        body = await page(api, path, 5, None)
        assert {"items", "total", "next_cursor"} <= set(body), path
        assert len(body["items"]) <= 5 and body["total"] >= len(body["items"]), path


async def test_connections_added_while_paging_neither_repeat_nor_shift(api: AdminApi) -> None:
    for name in "abcde":
        await api.store.add(plain(f"{name}.gov.kz", f"192.0.2.{ord(name)}"))
    first = await page(api, "/v1/connections", 2, None)
    assert [c["id"] for c in first["items"]] == ["a.gov.kz", "b.gov.kz"] and first["total"] == 5
    await api.store.add(plain("aa.gov.kz", "198.51.100.1"))  # before the cursor: not shown
    await api.store.add(plain("bb.gov.kz", "198.51.100.2"))  # after it: on the next page
    second = await page(api, "/v1/connections", 2, first["next_cursor"])
    assert [c["id"] for c in second["items"]] == ["bb.gov.kz", "c.gov.kz"]
    assert second["total"] == 7
    last = await page(api, "/v1/connections", 2, second["next_cursor"])
    assert [c["id"] for c in last["items"]] == ["d.gov.kz", "e.gov.kz"]
    assert last["next_cursor"] is None


async def test_the_queue_pages_by_queue_id_as_the_spool_does(api: AdminApi) -> None:
    for n in (1, 2, 3, 4):
        await api.spool.commit(message(f"QUEUEID0000{n}"))
    first = await page(api, "/v1/queue", 3, None)
    assert [m["id"] for m in first["items"]] == ["QUEUEID00001", "QUEUEID00002", "QUEUEID00003"]
    assert first["total"] == 4
    await api.spool.commit(message("QUEUEID00000"))  # sorts before the cursor
    await api.spool.commit(message("QUEUEID00005"))
    rest = await page(api, "/v1/queue", 3, first["next_cursor"])
    assert [m["id"] for m in rest["items"]] == ["QUEUEID00004", "QUEUEID00005"]
    assert (rest["total"], rest["next_cursor"]) == (6, None)


async def test_the_audit_log_pages_newest_first_as_the_store_does(api: AdminApi) -> None:
    for n in range(5):
        await api.services.audit.record("test", "paging.test", f"target-{n}")
    query = "/v1/audit?action=paging.test"
    first = await page(api, query, 2, None)
    assert [e["target"] for e in first["items"]] == ["target-4", "target-3"]
    await api.services.audit.record("test", "paging.test", "target-new")  # newer: not paged
    second = await page(api, query, 2, first["next_cursor"])
    assert [e["target"] for e in second["items"]] == ["target-2", "target-1"]
    assert second["total"] == 6
    last = await page(api, query, 2, second["next_cursor"])
    assert [e["target"] for e in last["items"]] == ["target-0"] and last["next_cursor"] is None


async def test_a_foreign_cursor_or_a_limit_out_of_bounds_is_422(api: AdminApi) -> None:
    await api.store.add(plain("a.gov.kz", "192.0.2.10"))
    await api.store.add(plain("b.gov.kz", "192.0.2.11"))
    cursor = (await page(api, "/v1/connections", 1, None))["next_cursor"]
    assert cursor is not None
    for query in ("/v1/queue?", "/v1/audit?", "/v1/tokens?", "/v1/connections?limit=1001&"):
        answer = await api.call("GET", f"{query}cursor={cursor}")
        assert answer.status_code == 422, (query, answer.text)
    foreign = await api.call("GET", f"/v1/tokens?cursor={cursor}")
    [error] = foreign.json()["errors"]
    assert (
        error["loc"] == ["query", "cursor"]
        and "not a cursor of the tokens list" in (error["detail"])
    )
    zero = await api.call("GET", "/v1/incidents?limit=0")
    assert zero.json()["errors"][0]["loc"] == ["query", "limit"]
