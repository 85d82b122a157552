"""`/v1/overrides`: per-connection overrides of the anomaly detector: list, set, show, cancel.

A `ceiling` raises the traffic a connection may send during a planned mass
mailing before the detector's verdict is acted on; an `exempt` override
means it is never suspended (its verdicts still open incidents). Reading
needs `viewer`; setting and cancelling `operator`, and a permanent exemption
`admin` (it switches the protection off for good). `current=true` lists only
the overrides not ended. The rules (bounds, no overlap, the audit) live in
`OverrideService`.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from admin.auth import Authority
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

    @r.get("", response_model=list[OverrideOut], dependencies=[Depends(viewer)])
    async def list_overrides(
        connection: Annotated[str | None, Query(max_length=255)] = None,
        current: bool = False,
    ) -> list[OverrideOut]:
        return [out(o) for o in await service.list(connection, current)]

    @r.post("", response_model=OverrideOut, status_code=201)
    async def set_override(body: OverrideBody, token: Operator) -> OverrideOut:
        if body.permanent and not token.role.allows(Role.ADMIN):
            raise HTTPException(
                403, f"a permanent exemption needs the admin role; token {token.name!r} is "
                f"{token.role}; give ends_at instead"
            )  # fmt: skip
        return out(await service.set(body.request(), token.actor))

    @r.get("/{override_id}", response_model=OverrideOut, dependencies=[Depends(viewer)])
    async def show_override(override_id: OverrideId) -> OverrideOut:
        return out(await service.get(override_id))

    @r.post("/{override_id}/cancel", response_model=OverrideOut)
    async def cancel_override(
        override_id: OverrideId, token: Operator, body: Reason | None = None
    ) -> OverrideOut:
        reason = body.reason if body else ""
        return out(await service.cancel(override_id, token.actor, reason))

    return r
