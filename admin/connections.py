"""`/v1/connections`: list, show, update, suspend, resume, disconnect.

Reading needs `viewer`; updating, suspending and resuming `operator`;
disconnecting `admin`. A disconnection with a future `effective_at` is
scheduled (shown in the connection's `disconnect`) and applied at that time;
`DELETE .../disconnect` (or `resume`) cancels it, as an `operator`. Each
handler translates HTTP to one call of `ConnectionService` and back; the
rules, the audit and the notices live there. A connection's `throttled` says
whether the anomaly detector throttles it now, as this node's board
(`ugem.core.throttle`) says (false without a board: the CLI, a node in mode off).
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from admin.auth import Authority
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

    @r.get("", response_model=list[ConnectionOut], dependencies=[Depends(viewer)])
    async def list_connections(
        state: ConnState | None = None,
        kind: OrgKind | None = None,
        text: Annotated[str | None, Query(max_length=200)] = None,
    ) -> list[ConnectionOut]:
        return [out(c) for c in await service.list(state, kind, text)]

    @r.get("/{conn_id}", response_model=ConnectionOut, dependencies=[Depends(viewer)])
    async def show_connection(conn_id: str) -> ConnectionOut:
        return out(await service.get(conn_id))

    @r.patch("/{conn_id}", response_model=ConnectionOut)
    async def update_connection(
        conn_id: str, body: ConnectionPatch, token: Operator
    ) -> ConnectionOut:
        return out(await service.update(conn_id, body.change(), token.actor))

    @r.post("/{conn_id}/suspend", response_model=ConnectionOut)
    async def suspend_connection(
        conn_id: str, body: RequiredReason, token: Operator
    ) -> ConnectionOut:
        return out(await service.suspend(conn_id, body.reason, token.actor))

    @r.post("/{conn_id}/resume", response_model=ConnectionOut)
    async def resume_connection(conn_id: str, body: Reason, token: Operator) -> ConnectionOut:
        return out(await service.resume(conn_id, body.reason, token.actor))

    @r.post("/{conn_id}/disconnect", response_model=ConnectionOut)
    async def disconnect_connection(
        conn_id: str, body: DisconnectBody, token: Annotated[ApiToken, Depends(admin)]
    ) -> ConnectionOut:
        conn = await service.disconnect(conn_id, body.reason, token.actor, body.when())
        return out(conn)

    @r.delete("/{conn_id}/disconnect", response_model=ConnectionOut)
    async def cancel_disconnect(conn_id: str, token: Operator) -> ConnectionOut:
        return out(await service.cancel_disconnect(conn_id, "", token.actor))

    return r
