"""Every POST of the console by role: 403 below its role (whatever the page showed), else done.

The same roles as the API (`tests/unit/test_admin_roles.py`): suspend and
resume need `operator`, disconnect `admin`, an incident's acknowledge and
close `operator`, an application's checks and decision `operator`, the
queue's bulk actions `operator`; signing in and out and the
language need none, only the session's CSRF token. A POST route added
without a row in `POSTS` fails `test_the_table_covers_every_post_route`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from admin.ui.app import routers
from admin.ui.connection_actions import ACTIONS
from admin.ui.console import Console
from admin.ui.i18n import Catalogues
from admin.ui.render import Renderer
from admin.ui.session import Sessions
from admin.ui.visitor import Doorman
from tests.support.admin import AdminApi, add_two_connections, admin_api
from tests.support.console import console_client, csrf_of, signed_in
from ugem.core.model import ConnState, Contact
from ugem.core.services.applications import ApplicationForm
from ugem.core.services.incidents import Action, Evidence, Mode
from ugem.core.services.tokens import Role

# (path, form, least role or None: only the CSRF token, success status)
POSTS: list[tuple[str, dict[str, str], Role | None, int]] = [
    ("/ui/connections/a.gov.kz/suspend", {"reason": "spam", "confirm": "yes"}, Role.OPERATOR, 303),
    ("/ui/connections/a.gov.kz/suspend", {"reason": "spam"}, Role.OPERATOR, 200),  # confirm page
    ("/ui/connections/b.gov.kz/resume", {"confirm": "yes"}, Role.OPERATOR, 303),
    ("/ui/connections/a.gov.kz/disconnect", {"reason": "gone", "confirm": "yes"}, Role.ADMIN, 303),
    ("/ui/applications/{app}/checks", {"confirm": "yes"}, Role.OPERATOR, 303),
    (
        "/ui/applications/{app}/decision",
        {"decision": "reject", "reasons": "no MX"},
        Role.OPERATOR,
        200,
    ),
    (
        "/ui/applications/{app}/decision",
        {"decision": "reject", "reasons": "no MX", "confirm": "yes"},
        Role.OPERATOR,
        303,
    ),
    ("/ui/incidents/1/ack", {"comment": "on it", "confirm": "yes"}, Role.OPERATOR, 303),
    ("/ui/incidents/1/close", {"comment": "done"}, Role.OPERATOR, 200),  # confirm page
    ("/ui/incidents/1/close", {"comment": "done", "confirm": "yes"}, Role.OPERATOR, 303),
    (
        "/ui/queue/actions",
        {"state": "deferred", "action": "hold", "reason": "x"},
        Role.OPERATOR,
        200,
    ),
    (
        "/ui/queue/actions",
        {"state": "deferred", "action": "hold", "reason": "x", "confirm": "yes"},
        Role.OPERATOR,
        303,
    ),
    ("/ui/sign-out", {}, None, 303),
    ("/ui/language", {"lang": "kk", "next": "/ui/connections"}, None, 303),
]
ROUTES = {
    "/ui/connections/{conn_id}/{name}",
    "/ui/incidents/{number}/{move}",
    "/ui/applications/{app_id}/{step}",
    "/ui/queue/actions",
    "/ui/sign-out",
    "/ui/language",
    "/ui/sign-in",  # tested with the session (test_session.py, test_csrf.py)
}
APPLICATION = ApplicationForm(
    "17", "c.gov.kz", "Akimat", ["192.0.2.30"], "Akimat of C", "local-government",
    [Contact("Ivanov Ivan", "it@c.gov.kz")],
)  # fmt: skip
CASES = [pytest.param(*row, id=f"{row[0]} {sorted(row[1])}") for row in POSTS]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with admin_api(tmp_path) as api:
        await add_two_connections(api)
        evidence = Evidence(api.clock.now(), Action.SUSPENDED, "412 recipients in 5 min")
        await api.services.incidents.record("a.gov.kz", Mode.ENFORCE, evidence, "detector")
        await api.services.applications.receive(APPLICATION, "test")
        yield api


@pytest.mark.parametrize(("path", "form", "least", "status"), CASES)
async def test_post_by_role(
    api: AdminApi, path: str, form: dict[str, str], least: Role | None, status: int
) -> None:
    [pending] = await api.services.applications.list()
    path = path.format(app=pending.id)
    for role in Role:
        if least is not None and not role.allows(least):
            async with signed_in(api, role) as (client, csrf):
                refused = await client.post(path, data=form | {"csrf": csrf})
                assert refused.status_code == 403, (role, refused.text)
                assert "This needs the" in refused.text
    async with console_client(api) as stranger:
        csrf = csrf_of((await stranger.get("/ui/sign-in")).text)
        answer = await stranger.post(path, data=form | {"csrf": csrf})
        assert answer.status_code == (403 if least else status), answer.text
    async with signed_in(api, least or Role.VIEWER) as (client, csrf):
        done = await client.post(path, data=form | {"csrf": csrf})
        assert done.status_code == status, done.text


async def test_refused_posts_changed_nothing(api: AdminApi) -> None:
    async with signed_in(api, Role.VIEWER) as (client, csrf):
        for name in ("suspend", "disconnect"):
            form = {"csrf": csrf, "reason": "x", "confirm": "yes"}
            assert (
                await client.post(f"/ui/connections/a.gov.kz/{name}", data=form)
            ).status_code == 403
    async with signed_in(api, Role.OPERATOR) as (client, csrf):
        form = {"csrf": csrf, "reason": "x", "confirm": "yes"}
        assert (
            await client.post("/ui/connections/a.gov.kz/disconnect", data=form)
        ).status_code == 403
    assert (await api.services.connections.get("a.gov.kz")).state == ConnState.CONNECTED
    assert not await api.services.audit.list(target="a.gov.kz", action="connection.suspend")


async def test_a_page_shows_only_the_actions_a_role_may_take(api: AdminApi) -> None:
    shown = {}
    for role in Role:
        async with signed_in(api, role) as (client, _):
            page = (await client.get("/ui/connections/a.gov.kz")).text
            shown[role] = {a for a in ("suspend", "resume", "disconnect") if f'/{a}"' in page}
    assert shown == {
        Role.VIEWER: set(),
        Role.OPERATOR: {"suspend"},
        Role.ADMIN: {"suspend", "disconnect"},
    }


async def test_the_actor_of_an_action_is_the_token(api: AdminApi) -> None:
    async with signed_in(api, Role.OPERATOR) as (client, csrf):
        form = {"csrf": csrf, "reason": "spam run", "confirm": "yes"}
        done = await client.post("/ui/connections/a.gov.kz/suspend", data=form)
        assert done.headers["location"] == "/ui/connections/a.gov.kz?done=suspend"
    [record] = await api.services.audit.list(target="a.gov.kz", action="connection.suspend")
    assert (record.entry.actor, record.entry.reason) == ("api:operator-token", "spam run")


def test_the_table_covers_every_post_route(api: AdminApi) -> None:
    sessions = Sessions(b"k" * 32, 60.0, api.clock)
    doorman = Doorman(sessions, api.services.tokens, Catalogues.load())
    console = Console(api.services, doorman, Renderer(sessions))
    posts = {
        "/ui" + route.path
        for router in routers(console)
        for route in router.routes
        if isinstance(route, APIRoute) and "POST" in (route.methods or set())
    }
    assert posts == ROUTES
    actions = {p.split("/")[-1] for p, *_ in POSTS if p.startswith("/ui/connections")}
    assert actions == set(ACTIONS) == {"suspend", "resume", "disconnect"}
