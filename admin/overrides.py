"""`/v1/overrides`: per-connection overrides of the anomaly detector: list, set, show, cancel.

A `ceiling` raises the traffic a connection may send during a planned mass
mailing before the detector's verdict is acted on; an `exempt` override
means it is never suspended (its verdicts still open incidents). Reading
needs `viewer`; setting and cancelling `operator`, and a permanent exemption
`admin` (it switches the protection off for good). `current=true` lists only
the overrides not ended. The rules (bounds, no overlap, the audit) live in
`OverrideService`. The list is a page, newest start first (`admin.pages`:
keyset on the start and the id).
"""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from admin.auth import Authority
from admin.errors import problems
from admin.pages import DEFAULT_LIMIT, Cursor, Limit, PageOut, page_out
from admin.schemas import OverrideBody, OverrideOut, Reason
from ugem.core.services.overrides import Override, OverrideService
from ugem.core.services.tokens import ApiToken, Role

OverrideId = Annotated[str, Path(max_length=64, description="the override's id")]


def router(service: OverrideService, auth: Authority) -> APIRouter:
    r = APIRouter(prefix="/overrides", tags=["overrides"])
    viewer = auth.require(Role.VIEWER)
    Operator = Annotated[ApiToken, Depends(auth.require(Role.OPERATOR))]

    def out(override: Override) -> OverrideOut:
        return OverrideOut.of(override, service.clock.now())

    @r.get(
        "",
        response_model=PageOut[OverrideOut],
        dependencies=[Depends(viewer)],
        summary="List overrides",
    )
    async def list_overrides(
        connection: Annotated[str | None, Query(max_length=255)] = None,
        current: Annotated[bool, Query(description="only those in force or to come")] = False,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> PageOut[OverrideOut]:
        """Overrides newest start first, of one connection if given."""
        return page_out(await service.page(connection, current, limit, cursor), out)

    @r.post(
        "",
        response_model=OverrideOut,
        status_code=201,
        summary="Set an override",
        responses=problems(404, 409),
    )
    async def set_override(body: OverrideBody, token: Operator) -> OverrideOut:
        """A ceiling or an exemption for one connection, from `starts_at` to `ends_at`
        (a permanent exemption needs admin: 403). 404: no such connection; 409: it overlaps
        another override of the connection."""
        if body.permanent and not token.role.allows(Role.ADMIN):
            raise HTTPException(
                403, f"a permanent exemption needs the admin role; token {token.name!r} is "
                f"{token.role}; give ends_at instead"
            )  # fmt: skip
        return out(await service.set(body.request(), token.actor))

    @r.get(
        "/{override_id}",
        response_model=OverrideOut,
        dependencies=[Depends(viewer)],
        summary="Show an override",
        responses=problems(404),
    )
    async def show_override(override_id: OverrideId) -> OverrideOut:
        """One override, and whether it is in force now."""
        return out(await service.get(override_id))

    @r.post(
        "/{override_id}/cancel",
        response_model=OverrideOut,
        summary="Cancel an override",
        responses=problems(404, 409),
    )
    async def cancel_override(
        override_id: OverrideId, token: Operator, body: Reason | None = None
    ) -> OverrideOut:
        """It ends now; kept for the record and audited. 409: cancelled or ended already."""
        reason = body.reason if body else ""
        return out(await service.cancel(override_id, token.actor, reason))

    return r
