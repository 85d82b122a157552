"""`/v1/queue` by filter: the list's filters, the summary, the actions and flush over HTTP.

The admin app runs in-process on a `FakeClock` with a real spool and store
(`tests.support.admin`); errors are problem+json bodies naming the parameter
or the body's field.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.queue.message import QueuedMessage, QueueState
from tests.support.admin import AdminApi, admin_api
from ugem.core.services.tokens import Role


def _mail(n: int, domain: str, minutes: float, now: float) -> QueuedMessage:
    data = b"From: <a@a.gov.kz>\r\nSubject: %d\r\n\r\nbody\r\n" % n
    return QueuedMessage(
        f"QUEUED{n:06d}", "a@a.gov.kz", [f"u{n}@{domain}"], data, len(data), "a.gov.kz",
        "192.0.2.10", now - minutes * 60, QueueState.DEFERRED,
    )  # fmt: skip


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with admin_api(tmp_path) as api:
        now = api.clock.now()
        for n, (domain, minutes) in enumerate(
            [("mail.ru", 1), ("mail.ru", 50), ("mail.ru", 500), ("gmail.com", 7), ("edu.kz", 3)]
        ):
            await api.spool.commit(_mail(n, domain, minutes, now))
        yield api


async def test_the_list_takes_the_filter_and_keeps_its_page_shape(api: AdminApi) -> None:
    answer = await api.call("GET", "/v1/queue?domain=mail.ru&older_than=30m&limit=1")
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert [m["id"] for m in page["items"]] == ["QUEUED000001"]
    assert page["total"] == 2 and page["next_cursor"] is not None
    rest = await api.call(
        "GET", f"/v1/queue?domain=mail.ru&older_than=30m&cursor={page['next_cursor']}"
    )
    assert [m["id"] for m in rest.json()["items"]] == ["QUEUED000002"]
    newer = await api.call("GET", "/v1/queue?newer_than=5m&recipient=@EDU.kz", Role.VIEWER)
    assert [m["id"] for m in newer.json()["items"]] == ["QUEUED000004"]
    seconds = await api.call("GET", "/v1/queue?older_than=3600")  # a bare number: seconds
    assert seconds.json()["total"] == 1


async def test_a_bad_filter_is_a_problem_naming_it(api: AdminApi) -> None:
    answer = await api.call("GET", "/v1/queue/summary?older_than=3x")
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    [error] = answer.json()["errors"]
    assert error["loc"] == ["query", "older_than"] and "not a duration" in error["detail"]
    body = {"action": "hold", "sender": "nobody", "reason": "x"}
    wrong = await api.call("POST", "/v1/queue/actions", body=body)
    assert wrong.status_code == 422
    [error] = wrong.json()["errors"]
    assert error["loc"] == ["body", "sender"] and error["pointer"] == "#/sender"
    unknown = await api.call("POST", "/v1/queue/actions", body={"action": "burn", "all": True})
    assert unknown.status_code == 422


async def test_the_summary_by_destination(api: AdminApi) -> None:
    answer = await api.call("GET", "/v1/queue/summary?top=1", Role.VIEWER)
    assert answer.status_code == 200, answer.text
    shape = answer.json()
    assert shape["by"] == "destination" and shape["buckets"][-1] == "320+"
    assert shape["rows"] == [{"key": "mail.ru", "total": 3, "counts": [1, 0, 0, 0, 1, 0, 0, 1]}]
    assert shape["other"] == {"key": "(other)", "total": 2, "counts": [1, 1, 0, 0, 0, 0, 0, 0]}
    assert (shape["other_rows"], shape["total"]["total"]) == (2, 5)


async def test_actions_by_filter_dry_run_then_for_real(api: AdminApi) -> None:
    body = {"action": "hold", "domain": "mail.ru", "dry_run": True}
    dry = await api.call("POST", "/v1/queue/actions", Role.OPERATOR, body)
    assert dry.json() == {
        "action": "hold",
        "count": 3,
        "dry_run": True,
        "filter": {"domain": "mail.ru"},
    }
    assert (await api.call("GET", "/v1/queue?state=held")).json()["total"] == 0
    body = {"action": "hold", "domain": "mail.ru", "reason": "mail.ru refuses us"}
    held = await api.call("POST", "/v1/queue/actions", Role.OPERATOR, body)
    assert held.json()["count"] == 3
    [entry] = (await api.call("GET", "/v1/audit?action=queue.bulk-hold")).json()["items"]
    assert (entry["actor"], entry["target"], entry["details"]) == (
        "api:operator-token",
        "domain=mail.ru",
        {"count": 3, "filter": {"domain": "mail.ru"}, "all": False},
    )
    everything = await api.call(
        "POST", "/v1/queue/actions", body={"action": "delete", "reason": "x"}
    )
    assert everything.status_code == 422 and "none given" in everything.json()["detail"]


async def test_flush_and_a_bounce_by_id(api: AdminApi) -> None:
    flushed = await api.call("POST", "/v1/queue/flush", Role.OPERATOR, {"reason": "peer back"})
    assert flushed.json() == {"count": 5}
    bounced = await api.call("POST", "/v1/queue/QUEUED000003/bounce", body={"reason": "spam"})
    assert bounced.json() == {"count": 1}
    items = (await api.call("GET", "/v1/queue?sender=<>")).json()["items"]
    assert [m["rcpts"] for m in items] == [["a@a.gov.kz"]]
    missing = await api.call("POST", "/v1/queue/NOSUCHID/bounce", body={})
    assert missing.status_code == 404
