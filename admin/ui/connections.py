"""The Connections pages: the list (search, state filter), a connection's page, its actions.

GET /ui/connections lists a page of `ConnectionService.page` (the API's own
search: id, name, a domain or a server) by state; GET /ui/connections/{id}
shows the organisation, contacts, domains, servers, state and its reason,
a scheduled disconnection, the connection's history (its audit records,
newest first), its overrides and the actions its state and the visitor's role
allow (`admin.ui.connection_actions`). POST /ui/connections/{id}/{action}
first answers a confirmation page repeating what will be done; only the
confirmed form (`confirm=yes`) acts, then 303 back to the connection's page,
which says what was done. Both steps are admitted like every POST
(CSRF, then the action's role: 403 whatever the page showed). The page
also draws the connection's traffic of the last day (`?span=week`: week)
against what the detector learned is usual (`TrafficService`, the one behind
/v1/connections/{id}/traffic; `admin.ui.traffic`), or says why it cannot.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, HTTPException
from starlette.requests import Request
from starlette.responses import Response

from admin.ui.confirm import confirmation, confirmed
from admin.ui.connection_actions import ACTIONS, asked, check
from admin.ui.console import Console, back_to
from admin.ui.render import BASE
from admin.ui.traffic import drawing, span_of
from ugem.core.model import ConnState
from ugem.core.paging import DEFAULT_LIMIT

HISTORY = 20  # audit records shown on a connection's page


def _state(value: str | None) -> ConnState | None:
    return ConnState(value) if value in {s.value for s in ConnState} else None


def router(console: Console) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    services = console.services

    @r.get("/connections")
    async def list_connections(
        request: Request, text: str = "", state: str = "", cursor: str | None = None
    ) -> Response:
        visitor = await console.signed_in(request)
        text = text.strip()[:200]
        page = await services.connections.page(
            _state(state), None, text or None, DEFAULT_LIMIT, cursor
        )
        return console.renderer.page(
            visitor, "connections.html", page=page, text=text, state=_state(state) or "",
            states=list(ConnState),
        )  # fmt: skip

    @r.get("/connections/{conn_id}")
    async def show_connection(
        request: Request, conn_id: str, done: str = "", span: str = ""
    ) -> Response:
        visitor = await console.signed_in(request)
        conn = await services.connections.get(conn_id)
        allowed = [a for a in ACTIONS.values() if a.fits(conn) and visitor.may(a.role)]
        throttle = services.throttle
        traffic = await services.traffic.traffic(conn.id, span_of(span))
        return console.renderer.page(
            visitor,
            "connection.html",
            conn=conn,
            now=services.connections.clock.now(),
            history=await services.audit.list(target=conn.id, limit=HISTORY),
            overrides=await services.overrides.list(conn.id),
            throttled=throttle is not None and throttle.throttled(conn.id),
            actions=allowed,
            done=done if done in ACTIONS else "",
            traffic=traffic,
            chart=drawing(traffic, visitor.words),
        )

    @r.post("/connections/{conn_id}/{name}")
    async def act(request: Request, conn_id: str, name: str) -> Response:
        action = ACTIONS.get(name)
        if action is None:
            raise HTTPException(404)
        visitor, form = await console.posted(request, action.role)
        assert visitor.token is not None  # admitted for a role
        conn = await services.connections.get(conn_id)
        check(action, form, visitor.words)
        if not confirmed(form):
            return confirmation(console, visitor, asked(action, conn, form, visitor.words))
        await action.run(services.connections, conn.id, form, visitor.token.actor, visitor.words)
        return back_to(f"{BASE}connections/{quote(conn.id)}?done={action.name}")

    return r
