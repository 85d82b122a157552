"""Every /v1/ endpoint by every role: 401 without a token, 403 below its role, success with it.

Each endpoint gets a fresh API over real services (SQLite store, real spool)
with two connections (a.gov.kz connected, b.gov.kz suspended and to be
disconnected tomorrow) and three
queued messages, so it can succeed. It is called with no token (401), with
every role below the one it needs (403, naming the role), with the role it
needs (its success status) and with each stronger role (past the role check:
the state may have changed, so a 409 is fine there, a 401/403 is not). A
route added without a row in `ENDPOINTS` fails `test_the_table_covers_every_route`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relay.queue.message import QueuedMessage, QueueState
from tests.support.admin import AdminApi, add_two_connections, admin_api
from ugem.core.model import Contact
from ugem.core.services.applications import ApplicationForm
from ugem.core.services.incidents import Action, Evidence, Mode
from ugem.core.services.overrides import OverrideKind, OverrideRequest
from ugem.core.services.tokens import Role

CONTACT = Contact("Ivanov Ivan Ivanovich", "it@d.gov.kz")

HELD, DEFERRED, ACTIVE = "HELDMSG00001", "DEFERMSG0001", "ACTIVEMSG001"

FORM: dict[str, Any] = {
    "number": "17",
    "domain": "c.gov.kz",
    "domain_owner": "Akimat",
    "servers": ["203.0.113.25"],
    "org_name": "Akimat of C",
    "kind": "local-government",
    "contacts": [{"full_name": "Ivanov Ivan Ivanovich", "email": "it@c.gov.kz"}],
}
REJECT = {"decision": "reject", "reasons": ["no technical capability"]}
TOMORROW = 1_767_312_000.0  # a day after the FakeClock's start
EXEMPT = {"connection": "b.gov.kz", "kind": "exempt", "reason": "agreed", "ends_at": TOMORROW}
DRAIN = {"to": "127.0.0.1:9", "token": "ugem_other_node"}  # nobody there: the run stops
IMPORT: dict[str, Any] = {
    "id": "IMPORTED0001", "source": "gw-a.test", "state": "deferred", "sender": "a@b.gov.kz",
    "rcpts": ["x@example.org"], "original_rcpts": ["x@example.org"], "size": 6,
    "connection": "a.gov.kz", "client_ip": "192.0.2.10", "received_at": 1.0, "attempts": 1,
    "next_attempt": 2.0, "last_error": "451 later", "hold_reason": "", "text": "aGVsbG8K",
}  # fmt: skip

# (method, path, body, least role, success status); {app} is a pending application's id,
# {override} an override of a.gov.kz; a.gov.kz has incident 1, open
ENDPOINTS: list[tuple[str, str, Any, Role, int]] = [
    ("GET", "/v1/connections", None, Role.VIEWER, 200),
    ("GET", "/v1/connections/a.gov.kz", None, Role.VIEWER, 200),
    ("GET", "/v1/connections/a.gov.kz/traffic", None, Role.VIEWER, 200),
    ("PATCH", "/v1/connections/a.gov.kz", {"org_name": "Renamed"}, Role.OPERATOR, 200),
    ("POST", "/v1/connections/a.gov.kz/suspend", {"reason": "spam"}, Role.OPERATOR, 200),
    ("POST", "/v1/connections/b.gov.kz/resume", {}, Role.OPERATOR, 200),
    ("POST", "/v1/connections/a.gov.kz/disconnect", {"reason": "status"}, Role.ADMIN, 200),
    ("DELETE", "/v1/connections/b.gov.kz/disconnect", None, Role.OPERATOR, 200),
    ("GET", "/v1/queue", None, Role.VIEWER, 200),
    ("GET", f"/v1/queue/{HELD}", None, Role.VIEWER, 200),
    ("POST", f"/v1/queue/{ACTIVE}/hold", {}, Role.OPERATOR, 200),
    ("POST", f"/v1/queue/{HELD}/release", {}, Role.OPERATOR, 200),
    ("POST", f"/v1/queue/{DEFERRED}/retry", {}, Role.OPERATOR, 200),
    ("DELETE", f"/v1/queue/{HELD}", None, Role.OPERATOR, 200),
    ("POST", "/v1/queue/release", {"connection": "b.gov.kz"}, Role.OPERATOR, 200),
    ("POST", "/v1/queue/purge", {"connection": "b.gov.kz"}, Role.OPERATOR, 200),
    ("GET", "/v1/queue/summary", None, Role.VIEWER, 200),
    (
        "POST",
        "/v1/queue/actions",
        {"action": "hold", "all": True, "dry_run": True},
        Role.OPERATOR,
        200,
    ),
    ("POST", "/v1/queue/flush", {}, Role.OPERATOR, 200),
    ("POST", f"/v1/queue/{ACTIVE}/bounce", {"reason": "spam"}, Role.OPERATOR, 200),
    ("GET", "/v1/audit", None, Role.VIEWER, 200),
    ("GET", "/v1/audit/verify", None, Role.VIEWER, 200),
    ("GET", "/v1/tokens", None, Role.ADMIN, 200),
    ("POST", "/v1/tokens", {"name": "new", "role": "viewer"}, Role.ADMIN, 201),
    ("POST", "/v1/tokens/viewer-token/revoke", {}, Role.ADMIN, 200),
    ("POST", "/v1/applications", FORM, Role.OPERATOR, 201),
    ("GET", "/v1/applications", None, Role.VIEWER, 200),
    ("GET", "/v1/applications/{app}", None, Role.VIEWER, 200),
    ("POST", "/v1/applications/{app}/checks", {}, Role.OPERATOR, 200),
    ("POST", "/v1/applications/{app}/decision", REJECT, Role.OPERATOR, 200),
    ("GET", "/v1/incidents", None, Role.VIEWER, 200),
    ("GET", "/v1/incidents/1", None, Role.VIEWER, 200),
    ("POST", "/v1/incidents/1/ack", {}, Role.OPERATOR, 200),
    ("POST", "/v1/incidents/1/close", {"comment": "false alarm"}, Role.OPERATOR, 200),
    ("GET", "/v1/overrides", None, Role.VIEWER, 200),
    ("POST", "/v1/overrides", EXEMPT, Role.OPERATOR, 201),
    ("GET", "/v1/overrides/{override}", None, Role.VIEWER, 200),
    ("POST", "/v1/overrides/{override}/cancel", {}, Role.OPERATOR, 200),
    ("GET", "/v1/reputation", None, Role.VIEWER, 200),
    ("GET", "/v1/messages", None, Role.VIEWER, 200),
    ("GET", "/v1/messages/rate", None, Role.VIEWER, 200),
    ("GET", "/v1/reputation/standings", None, Role.VIEWER, 200),
    ("GET", "/v1/reputation/complaints", None, Role.VIEWER, 200),
    ("GET", "/v1/drain", None, Role.VIEWER, 200),
    ("POST", "/v1/drain/stop-accepting", {"reason": "maintenance"}, Role.ADMIN, 202),
    ("POST", "/v1/drain", DRAIN, Role.ADMIN, 202),
    ("DELETE", "/v1/drain", None, Role.ADMIN, 200),
    ("POST", "/v1/queue/import", IMPORT, Role.ADMIN, 201),
]
CASES = [pytest.param(*endpoint, id=f"{endpoint[0]} {endpoint[1]}") for endpoint in ENDPOINTS]


def _message(queue_id: str, state: QueueState, connection: str) -> QueuedMessage:
    data = b"From: <a@b.gov.kz>\r\nSubject: hi\r\n\r\nbody\r\n"
    return QueuedMessage(
        queue_id, "a@b.gov.kz", ["x@example.org"], data, len(data), connection, "192.0.2.2",
        1.0, state, hold_reason="suspended" if state == QueueState.HELD else "",
    )  # fmt: skip


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with admin_api(tmp_path, message_index=tmp_path / "maillog.db") as api:
        await add_two_connections(api)
        later = api.clock.now() + 86400
        await api.services.connections.disconnect("b.gov.kz", "status", "test", later)
        await api.spool.commit(_message(HELD, QueueState.HELD, "b.gov.kz"))
        await api.spool.commit(_message(DEFERRED, QueueState.DEFERRED, "a.gov.kz"))
        await api.spool.commit(_message(ACTIVE, QueueState.ACTIVE, "a.gov.kz"))
        evidence = Evidence(api.clock.now(), Action.SUSPENDED, "412 recipients in 5 min")
        await api.services.incidents.record("a.gov.kz", Mode.ENFORCE, evidence, "detector")
        yield api


@pytest.fixture
async def app_id(api: AdminApi) -> str:
    form = ApplicationForm(**FORM | {"domain": "d.gov.kz", "contacts": [CONTACT]})
    return (await api.services.applications.receive(form, "test")).id


@pytest.fixture
async def override_id(api: AdminApi) -> str:
    request = OverrideRequest(
        "a.gov.kz", OverrideKind.CEILING, "newsletter", ends_at=TOMORROW, max_messages_per_hour=9
    )
    return (await api.services.overrides.set(request, "test")).id


@pytest.mark.parametrize(("method", "path", "body", "least", "status"), CASES)
async def test_endpoint_by_role(
    api: AdminApi,
    app_id: str,
    override_id: str,
    method: str,
    path: str,
    body: Any,
    least: Role,
    status: int,
) -> None:
    path = path.replace("{app}", app_id).replace("{override}", override_id)
    nobody = await api.call(method, path, None, body)
    assert nobody.status_code == 401, nobody.text
    assert nobody.headers["www-authenticate"] == "Bearer"
    weaker = [role for role in Role if not role.allows(least)]
    for role in weaker:
        refused = await api.call(method, path, role, body)
        assert refused.status_code == 403, (role, refused.text)
        assert f"needs the {least} role" in refused.json()["detail"]
        assert refused.headers["content-type"] == "application/problem+json"
    allowed = await api.call(method, path, least, body)
    assert allowed.status_code == status, allowed.text
    for role in Role:
        if role.allows(least) and role != least:
            again = await api.call(method, path, role, body)
            assert again.status_code not in (401, 403), (role, again.text)


async def test_a_wrong_or_revoked_token_is_401(api: AdminApi) -> None:
    wrong = await api.client.get("/v1/connections", headers={"Authorization": "Bearer ugem_x"})
    assert wrong.status_code == 401
    await api.services.tokens.revoke("viewer-token", "test")
    revoked = await api.call("GET", "/v1/connections", Role.VIEWER)
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["detail"]


async def test_the_table_covers_every_route(api: AdminApi) -> None:
    def template(path: str) -> str:
        for real in (HELD, DEFERRED, ACTIVE):
            path = path.replace(real, "{queue_id}")
        path = path.replace("a.gov.kz", "{conn_id}").replace("b.gov.kz", "{conn_id}")
        path = path.replace("viewer-token", "{name}").replace("{app}", "{app_id}")
        path = path.replace("/v1/incidents/1", "/v1/incidents/{incident_id}")
        return path.replace("{override}", "{override_id}")

    paths = api.app.openapi()["paths"]
    routes = {(m.upper(), p) for p, ops in paths.items() if p.startswith("/v1/") for m in ops}
    assert routes == {(m, template(p)) for m, p, *_ in ENDPOINTS}
    # the schema names each route's least role, and documents 403 exactly above viewer
    # (and on the one route where a viewer may read but not everything: a message's body)
    for method, path, _, least, _ in ENDPOINTS:
        operation = paths[template(path)][method.lower()]
        assert operation["security"] == [{"HTTPBearer": [str(least)]}], (method, path)
        body_read = (method, template(path)) == ("GET", "/v1/queue/{queue_id}")
        can_403 = least != Role.VIEWER or body_read
        assert ("403" in operation["responses"]) == can_403, (method, path)
        assert {"401", "503"} <= set(operation["responses"]), (method, path)
