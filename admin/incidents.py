"""`/v1/incidents`: the incidents of connections (the anomaly detector's) and of the gateway
itself (its addresses listed, bursts of blocklisted replies), each with its `kind`:
list, show, acknowledge, close.

Reading needs `viewer`; acknowledging and closing `operator` (the audit log
names the token), each with an optional comment. An unknown number is 404;
acknowledging an incident that is not open, or closing a closed one, is 409
saying who did it and when. Each handler is one call of `IncidentService`,
where the rules and the audit live. The list is a page, newest first
(`admin.pages`: keyset on the number).
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from admin.auth import Authority
from admin.errors import problems
from admin.pages import DEFAULT_LIMIT, Cursor, Limit, PageOut, page_out
from admin.schemas import CommentBody, IncidentOut
from ugem.core.services.incidents import IncidentService, IncidentState
from ugem.core.services.tokens import ApiToken, Role

IncidentId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the incident's number")]


def router(service: IncidentService, auth: Authority) -> APIRouter:
    r = APIRouter(prefix="/incidents", tags=["incidents"])
    viewer = auth.require(Role.VIEWER)
    Operator = Annotated[ApiToken, Depends(auth.require(Role.OPERATOR))]

    @r.get(
        "",
        response_model=PageOut[IncidentOut],
        dependencies=[Depends(viewer)],
        summary="List incidents",
    )
    async def list_incidents(
        state: IncidentState | None = None,
        connection: Annotated[
            str | None, Query(max_length=255, description="a connection id or a gateway subject")
        ] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> PageOut[IncidentOut]:
        """Incidents newest first, of one state and connection if given."""
        return page_out(await service.page(state, connection, limit, cursor), IncidentOut.of)

    @r.get(
        "/{incident_id}",
        response_model=IncidentOut,
        dependencies=[Depends(viewer)],
        summary="Show an incident",
        responses=problems(404),
    )
    async def show_incident(incident_id: IncidentId) -> IncidentOut:
        """One incident: its verdicts' evidence, suspects, and who acknowledged or closed it."""
        return IncidentOut.of(await service.get(incident_id))

    @r.post(
        "/{incident_id}/ack",
        response_model=IncidentOut,
        summary="Acknowledge an incident",
        responses=problems(404, 409),
    )
    async def acknowledge_incident(
        incident_id: IncidentId, token: Operator, body: CommentBody | None = None
    ) -> IncidentOut:
        """Someone is on it; audited with the comment. 409: it is not open."""
        comment = body.comment if body else ""
        return IncidentOut.of(await service.acknowledge(incident_id, token.actor, comment))

    @r.post(
        "/{incident_id}/close",
        response_model=IncidentOut,
        summary="Close an incident",
        responses=problems(404, 409),
    )
    async def close_incident(
        incident_id: IncidentId, token: Operator, body: CommentBody | None = None
    ) -> IncidentOut:
        """It is over (closed is final); audited with the comment. 409: closed already."""
        comment = body.comment if body else ""
        return IncidentOut.of(await service.close(incident_id, token.actor, comment))

    return r
