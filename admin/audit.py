"""`/v1/audit`: the audit log, newest first, and the verification of its hash chain.

Both need `viewer`. The list is a page, newest first (`admin.pages`: keyset on
the record's `seq`, which the store pages by itself); its total counts every
matching record. `since` and `until` keep the records written in that window
(`window_of`: read as the message search reads them).
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from admin.auth import Authority
from admin.pages import DEFAULT_LIMIT, Cursor, Limit, PageOut, page_out
from admin.schemas import AuditOut, VerdictOut
from ugem.core.services.audit import AuditLog, window_of
from ugem.core.services.tokens import Role

SINCE = "written at or after: RFC 3339, Unix time or a date (Asia/Almaty without a zone)"
UNTIL = "written before: as since; a date means to the end of that day"


def router(service: AuditLog, auth: Authority) -> APIRouter:
    r = APIRouter(
        prefix="/audit", tags=["audit"], dependencies=[Depends(auth.require(Role.VIEWER))]
    )

    @r.get("", response_model=PageOut[AuditOut], summary="List the audit log")
    async def list_audit(
        target: Annotated[str | None, Query(max_length=255, description="what was changed")] = None,
        actor: Annotated[str | None, Query(max_length=255, description="who changed it")] = None,
        action: Annotated[
            str | None, Query(max_length=100, description="e.g. queue.delete")
        ] = None,
        since: Annotated[str | None, Query(max_length=100, description=SINCE)] = None,
        until: Annotated[str | None, Query(max_length=100, description=UNTIL)] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> PageOut[AuditOut]:
        """Who did what, to which target, when and why, with the target before and after;
        newest first."""
        window = window_of(since, until)
        found = await service.page(target, actor, action, limit, cursor, window=window)
        return page_out(found, AuditOut.of)

    @r.get("/verify", response_model=VerdictOut, summary="Verify the audit log's hash chain")
    async def verify_audit() -> VerdictOut:
        """Reads the whole chain: every record edited, missing or out of its place is a
        problem named; `ok` when there is none."""
        return VerdictOut.of(await service.verify())

    return r
