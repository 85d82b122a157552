"""`/v1/audit`: the audit log, newest first, and the verification of its hash chain.

Both need `viewer`. `before` pages back: pass the smallest `seq` of a page to
get the page before it.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from admin.auth import Authority
from admin.schemas import AuditOut, VerdictOut
from ugem.core.services.audit import AuditLog
from ugem.core.services.tokens import Role


def router(service: AuditLog, auth: Authority) -> APIRouter:
    r = APIRouter(
        prefix="/audit", tags=["audit"], dependencies=[Depends(auth.require(Role.VIEWER))]
    )

    @r.get("", response_model=list[AuditOut])
    async def list_audit(
        target: Annotated[str | None, Query(max_length=255)] = None,
        actor: Annotated[str | None, Query(max_length=255)] = None,
        action: Annotated[str | None, Query(max_length=100)] = None,
        before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> list[AuditOut]:
        found = await service.list(target, limit, before, actor, action)
        return [AuditOut.of(r) for r in found]

    @r.get("/verify", response_model=VerdictOut)
    async def verify_audit() -> VerdictOut:
        return VerdictOut.of(await service.verify())

    return r
