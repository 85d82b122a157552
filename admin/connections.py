"""`/v1/connections`: list, show, update, suspend, resume, disconnect.

Reading needs `viewer`; updating, suspending and resuming `operator`;
disconnecting `admin`. A disconnection with a future `effective_at` is
scheduled (shown in the connection's `disconnect`) and applied at that time;
`DELETE .../disconnect` (or `resume`) cancels it, as an `operator`. Each
handler translates HTTP to one call of `ConnectionService` and back; the
rules, the audit and the notices live there. A connection's `throttled` says
whether the anomaly detector throttles it now, as this node's board
(`ugem.core.throttle`) says (false without a board: the CLI, a node in mode off).
The list is a page by id (`admin.pages`).
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from admin.auth import Authority
from admin.errors import problems
from admin.pages import DEFAULT_LIMIT, Cursor, Limit, PageOut, page_out
from admin.schemas import (
    ConnectionOut,
    ConnectionPatch,
    DisconnectBody,
    Reason,
    RequiredReason,
)
from ugem.core.model import Connection, ConnState, OrgKind
from ugem.core.services.connections import ConnectionService
from ugem.core.services.tokens import ApiToken, Role
from ugem.core.throttle import ThrottleView


def router(
    service: ConnectionService, auth: Authority, throttle: ThrottleView | None = None
) -> APIRouter:
    r = APIRouter(prefix="/connections", tags=["connections"])

    def out(conn: Connection) -> ConnectionOut:
        return ConnectionOut.of(conn, throttle is not None and throttle.throttled(conn.id))

    viewer, operator = auth.require(Role.VIEWER), auth.require(Role.OPERATOR)
    admin = auth.require(Role.ADMIN)
    Operator = Annotated[ApiToken, Depends(operator)]

    @r.get(
        "",
        response_model=PageOut[ConnectionOut],
        dependencies=[Depends(viewer)],
        summary="List connections",
    )
    async def list_connections(
        state: ConnState | None = None,
        kind: OrgKind | None = None,
        text: Annotated[
            str | None,
            Query(max_length=200, description="in the id, name, a domain or a server"),
        ] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> PageOut[ConnectionOut]:
        """The connected organisations, by id, of one state and kind if given."""
        return page_out(await service.page(state, kind, text, limit, cursor), out)

    @r.get(
        "/{conn_id}",
        response_model=ConnectionOut,
        dependencies=[Depends(viewer)],
        summary="Show a connection",
        responses=problems(404),
    )
    async def show_connection(conn_id: str) -> ConnectionOut:
        """One connection: its organisation, domains, servers, contacts and state."""
        return out(await service.get(conn_id))

    @r.patch(
        "/{conn_id}",
        response_model=ConnectionOut,
        summary="Update a connection",
        responses=problems(404, 409),
    )
    async def update_connection(
        conn_id: str, body: ConnectionPatch, token: Operator
    ) -> ConnectionOut:
        """Change the fields given (the rest stay); in the registry at once, audited with
        before and after. 409: a server or domain belongs to another connection."""
        return out(await service.update(conn_id, body.change(), token.actor))

    @r.post(
        "/{conn_id}/suspend",
        response_model=ConnectionOut,
        summary="Suspend a connection",
        responses=problems(404, 409),
    )
    async def suspend_connection(
        conn_id: str, body: RequiredReason, token: Operator
    ) -> ConnectionOut:
        """Its servers get 451 4.7.1 and its queued mail is held; the owner is notified.
        409: it is not connected."""
        return out(await service.suspend(conn_id, body.reason, token.actor))

    @r.post(
        "/{conn_id}/resume",
        response_model=ConnectionOut,
        summary="Resume a connection",
        responses=problems(404, 409),
    )
    async def resume_connection(conn_id: str, body: Reason, token: Operator) -> ConnectionOut:
        """Lift a suspension (its held mail is released) or cancel a scheduled
        disconnection. 409: neither applies."""
        return out(await service.resume(conn_id, body.reason, token.actor))

    @r.post(
        "/{conn_id}/disconnect",
        response_model=ConnectionOut,
        summary="Disconnect a connection",
        responses=problems(404, 409),
    )
    async def disconnect_connection(
        conn_id: str, body: DisconnectBody, token: Annotated[ApiToken, Depends(admin)]
    ) -> ConnectionOut:
        """Now, or at `effective_at` (scheduled until then). 409: disconnected already."""
        conn = await service.disconnect(conn_id, body.reason, token.actor, body.when())
        return out(conn)

    @r.delete(
        "/{conn_id}/disconnect",
        response_model=ConnectionOut,
        summary="Cancel a scheduled disconnection",
        responses=problems(404, 409),
    )
    async def cancel_disconnect(conn_id: str, token: Operator) -> ConnectionOut:
        """The connection stays. 409: no disconnection is scheduled."""
        return out(await service.cancel_disconnect(conn_id, "", token.actor))

    return r
