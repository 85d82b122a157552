"""What the /v1/ connection and queue endpoints answer, beyond roles.

Bad input is 422 naming the field, an unknown id 404, an action that does not
fit the state 409 saying what to do; an update takes effect in the registry
at once and is audited with before and after; the queue list filters by
state, connection and age, and a message's body is shown only when asked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.queue.message import QueuedMessage, QueueState
from tests.support.admin import AdminApi, admin_api
from tests.support.connections import plain
from ugem.core.model import ConnState
from ugem.core.registry_watch import REFUSED


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with admin_api(tmp_path) as api:
        await api.store.add(plain("a.gov.kz", "192.0.2.10"))
        await api.store.add(plain("b.gov.kz", "198.51.100.0/24"))
        await api.registry.sync()
        yield api


async def test_bad_input_is_422_naming_the_field(api: AdminApi) -> None:
    bad_server = await api.call("PATCH", "/v1/connections/a.gov.kz", body={"servers": ["x"]})
    assert bad_server.status_code == 422
    [problem] = bad_server.json()["errors"]
    assert problem["loc"][-1] == "server" and "'x'" in problem["detail"]
    no_reason = await api.call("POST", "/v1/connections/a.gov.kz/suspend", body={})
    assert no_reason.status_code == 422
    [missing] = no_reason.json()["errors"]
    assert (missing["loc"], missing["pointer"]) == (["body", "reason"], "#/reason")
    assert no_reason.json()["detail"] == "reason: Field required"
    typo = await api.call("PATCH", "/v1/connections/a.gov.kz", body={"org": "X"})
    assert typo.status_code == 422 and typo.json()["errors"][0]["loc"] == ["body", "org"]


async def test_unknown_ids_are_404(api: AdminApi) -> None:
    for method, path in [
        ("GET", "/v1/connections/nobody.gov.kz"),
        ("GET", "/v1/connections/not a domain"),
        ("POST", "/v1/connections/nobody.gov.kz/resume"),
        ("GET", "/v1/queue/NOSUCHID0000"),
        ("DELETE", "/v1/queue/NOSUCHID0000"),
    ]:
        answer = await api.call(method, path, body={} if method == "POST" else None)
        assert answer.status_code == 404, (path, answer.text)


async def test_changes_while_the_store_is_refused_are_503_saying_why(api: AdminApi) -> None:
    """The node's store came back empty (refused: its registry relays on its copy): a change
    is 503 at once, not a 404 from the empty store nor a write into it."""
    api.registry.watch._trouble(REFUSED, "the store has no generation: it is empty")
    for path, body in [
        ("/v1/connections/a.gov.kz/suspend", {"reason": "spam"}),
        ("/v1/connections/a.gov.kz/disconnect", {"reason": "contract ended"}),
        ("/v1/connections/nobody.gov.kz/resume", {}),
    ]:
        answer = await api.call("POST", path, body=body)
        assert answer.status_code == 503, (path, answer.text)
        assert answer.json()["detail"].startswith("the store is refused (the store has no gen")
    conn = await api.store.get("a.gov.kz")
    assert conn is not None and conn.state == ConnState.CONNECTED
    api.registry.watch._recovered(0.0)
    path = "/v1/connections/a.gov.kz/suspend"
    suspended = await api.call("POST", path, body={"reason": "spam"})
    assert suspended.status_code == 200


async def test_actions_that_do_not_fit_the_state_are_409_saying_what_to_do(
    api: AdminApi,
) -> None:
    resume = await api.call("POST", "/v1/connections/a.gov.kz/resume", body={})
    assert resume.status_code == 409 and "not suspended" in resume.json()["detail"]
    first = await api.call("POST", "/v1/connections/a.gov.kz/suspend", body={"reason": "spam"})
    assert first.status_code == 200
    twice = await api.call("POST", "/v1/connections/a.gov.kz/suspend", body={"reason": "spam"})
    assert twice.status_code == 409 and "resume lifts" in twice.json()["detail"]
    taken = await api.call("PATCH", "/v1/connections/a.gov.kz", body={"servers": ["198.51.100.7"]})
    assert taken.status_code == 409
    assert "connection 'b.gov.kz'" in taken.json()["detail"]


async def test_an_update_takes_effect_at_once_and_is_audited(api: AdminApi) -> None:
    body = {
        "servers": ["192.0.2.10", "2001:db8::25"],
        "contacts": [{"full_name": "Әлия Сәрсенбаева", "email": "aliya@a.gov.kz"}],
    }
    answer = await api.call("PATCH", "/v1/connections/a.gov.kz", body=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["servers"] == ["192.0.2.10/32", "2001:db8::25/128"]
    found = api.registry.by_address("2001:db8::25")
    assert found is not None and found.id == "a.gov.kz"
    [entry] = (await api.call("GET", "/v1/audit?target=a.gov.kz")).json()["items"]
    assert (entry["actor"], entry["action"]) == ("api:admin-token", "connection.update")
    assert entry["before"]["contacts"] == []
    assert entry["after"]["contacts"][0]["full_name"] == "Әлия Сәрсенбаева"


async def test_list_filters_by_state_kind_and_text(api: AdminApi) -> None:
    await api.call("POST", "/v1/connections/b.gov.kz/suspend", body={"reason": "spam"})
    suspended = await api.call("GET", "/v1/connections?state=suspended")
    assert [c["id"] for c in suspended.json()["items"]] == ["b.gov.kz"]
    text = await api.call("GET", "/v1/connections?text=198.51")
    assert [c["id"] for c in text.json()["items"]] == ["b.gov.kz"]
    kind = await api.call("GET", "/v1/connections?kind=quasi-public")
    assert kind.json() == {"items": [], "total": 0, "next_cursor": None}


def _message(queue_id: str, state: QueueState, connection: str, received: float) -> QueuedMessage:
    data = b"From: <a@a.gov.kz>\r\nSubject: hi\r\n\r\nsecret body\r\n"
    return QueuedMessage(
        queue_id, "a@a.gov.kz", ["x@example.org"], data, len(data), connection, "192.0.2.10",
        received, state,
    )  # fmt: skip


async def test_queue_list_filters_and_show_hides_the_body(api: AdminApi) -> None:
    now = api.clock.now()
    await api.spool.commit(_message("OLDHELD00001", QueueState.HELD, "a.gov.kz", now - 7200))
    await api.spool.commit(_message("NEWHELD00001", QueueState.HELD, "a.gov.kz", now - 60))
    await api.spool.commit(_message("DEFERRED0001", QueueState.DEFERRED, "b.gov.kz", now - 60))

    async def ids(query: str) -> list[str]:
        answer = await api.call("GET", f"/v1/queue?{query}")
        assert answer.status_code == 200, answer.text
        return [m["id"] for m in answer.json()["items"]]

    assert await ids("state=held") == ["NEWHELD00001", "OLDHELD00001"]
    assert await ids("connection=b.gov.kz") == ["DEFERRED0001"]
    assert await ids("state=held&older_than=3600") == ["OLDHELD00001"]
    assert (await api.call("GET", "/v1/queue?state=lost")).status_code == 422
    shown = (await api.call("GET", "/v1/queue/OLDHELD00001")).json()
    assert "Subject: hi" in shown["headers"] and shown["body"] is None
    full = (await api.call("GET", "/v1/queue/OLDHELD00001?body=true")).json()
    assert full["body"] == "secret body\r\n"
    wrong = await api.call("POST", "/v1/queue/DEFERRED0001/release", body={})
    assert wrong.status_code == 409 and "retry it" in wrong.json()["detail"]
    deleted = await api.call("DELETE", "/v1/queue/OLDHELD00001?reason=spam")
    assert deleted.json() == {"count": 1}
    [entry] = (await api.call("GET", "/v1/audit?action=queue.delete")).json()["items"]
    assert (entry["target"], entry["reason"], entry["details"]) == (
        "OLDHELD00001",
        "spam",
        {"count": 1},
    )
