"""`/v1/queue`: list and show queued mail; hold, release, delete, retry; bulk per connection.

Reading needs `viewer`, but a message's body (`?body=true`) `operator`, and
each body read is audited (both in `QueueService.show_body`); every change
needs `operator`. `POST /v1/queue/release` and
`POST /v1/queue/purge` act on all held mail of one connection; deleting and
purging are audited with the count (in `QueueService`).
"""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from admin.auth import Authority
from admin.schemas import TEXT, BulkAction, Count, MailDetail, MailOut, Reason
from ugem.core.services.mailqueue import QueueService
from ugem.core.services.tokens import ApiToken, Role

State = Literal["active", "deferred", "held"]


def router(service: QueueService, auth: Authority) -> APIRouter:
    r = APIRouter(prefix="/queue", tags=["queue"])
    viewer, operator = auth.require(Role.VIEWER), auth.require(Role.OPERATOR)
    Operator = Annotated[ApiToken, Depends(operator)]
    Viewer = Annotated[ApiToken, Depends(viewer)]

    @r.get("", response_model=list[MailOut], dependencies=[Depends(viewer)])
    async def list_queue(
        state: State | None = None,
        connection: Annotated[str | None, Query(max_length=255)] = None,
        older_than: Annotated[
            float | None, Query(ge=0, allow_inf_nan=False, description="seconds")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> list[MailOut]:
        found = await service.list(state, connection, older_than, limit)
        return [MailOut.of(m) for m in found]

    @r.get("/{queue_id}", response_model=MailDetail)
    async def show_message(
        queue_id: str,
        token: Viewer,
        body: Annotated[bool, Query(description="the body too: needs operator; audited")] = False,
        reason: Annotated[str, Query(max_length=TEXT, description="why the body is read")] = "",
    ) -> MailDetail:
        if not body:
            return MailDetail.of_view(await service.show(queue_id))
        return MailDetail.of_view(
            await service.show_body(queue_id, token.actor, token.role, reason)
        )

    @r.post("/release", response_model=Count)
    async def release_connection(body: BulkAction, token: Operator) -> Count:
        n = await service.release_connection(body.connection, token.actor, body.reason)
        return Count(count=n)

    @r.post("/purge", response_model=Count)
    async def purge_connection(body: BulkAction, token: Operator) -> Count:
        n = await service.purge_connection(body.connection, token.actor, body.reason)
        return Count(count=n)

    @r.post("/{queue_id}/hold", response_model=Count)
    async def hold_message(queue_id: str, body: Reason, token: Operator) -> Count:
        return Count(count=await service.hold(queue_id, token.actor, body.reason))

    @r.post("/{queue_id}/release", response_model=Count)
    async def release_message(queue_id: str, body: Reason, token: Operator) -> Count:
        return Count(count=await service.release(queue_id, token.actor, body.reason))

    @r.post("/{queue_id}/retry", response_model=Count)
    async def retry_message(queue_id: str, body: Reason, token: Operator) -> Count:
        return Count(count=await service.retry(queue_id, token.actor, body.reason))

    @r.delete("/{queue_id}", response_model=Count)
    async def delete_message(queue_id: str, token: Operator, reason: str = "") -> Count:
        return Count(count=await service.delete(queue_id, token.actor, reason))

    return r
