"""`/v1/queue`: list and show queued mail; hold, release, delete, retry; bulk per connection.

Reading needs `viewer`, but a message's body (`?body=true`) `operator`, and
each body read is audited (both in `QueueService.show_body`); every change
needs `operator`. `POST /v1/queue/release` and
`POST /v1/queue/purge` act on all held mail of one connection; deleting and
purging are audited with the count (in `QueueService`). The list is a page by
queue id, oldest first (`admin.pages`; the spools page by id themselves).
"""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from admin.auth import Authority
from admin.errors import problems
from admin.pages import DEFAULT_LIMIT, Cursor, Limit, PageOut, page_out
from admin.schemas import TEXT, BulkAction, Count, MailDetail, MailOut, Reason
from ugem.core.services.mailqueue import QueueService
from ugem.core.services.tokens import ApiToken, Role

State = Literal["active", "deferred", "held"]


def router(service: QueueService, auth: Authority) -> APIRouter:
    r = APIRouter(prefix="/queue", tags=["queue"])
    viewer, operator = auth.require(Role.VIEWER), auth.require(Role.OPERATOR)
    Operator = Annotated[ApiToken, Depends(operator)]
    Viewer = Annotated[ApiToken, Depends(viewer)]

    @r.get(
        "",
        response_model=PageOut[MailOut],
        dependencies=[Depends(viewer)],
        summary="List queued mail",
    )
    async def list_queue(
        state: State | None = None,
        connection: Annotated[str | None, Query(max_length=255)] = None,
        older_than: Annotated[
            float | None,
            Query(ge=0, allow_inf_nan=False, description="only mail queued this many seconds ago"),
        ] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> PageOut[MailOut]:
        """Every worker's queued mail, oldest first, without text; of one state and origin
        connection if given."""
        found = await service.page(state, connection, older_than, limit, cursor)
        return page_out(found, MailOut.of)

    @r.get(
        "/{queue_id}",
        response_model=MailDetail,
        summary="Show a queued message",
        responses=problems(403, 404),
    )
    async def show_message(
        queue_id: str,
        token: Viewer,
        body: Annotated[bool, Query(description="the body too: needs operator; audited")] = False,
        reason: Annotated[str, Query(max_length=TEXT, description="why the body is read")] = "",
    ) -> MailDetail:
        """The envelope and the header block; with `body=true` the body too (private
        correspondence: 403 below operator, and the read is audited first)."""
        if not body:
            return MailDetail.of_view(await service.show(queue_id))
        return MailDetail.of_view(
            await service.show_body(queue_id, token.actor, token.role, reason)
        )

    @r.post("/release", response_model=Count, summary="Release a connection's held mail")
    async def release_connection(body: BulkAction, token: Operator) -> Count:
        """Every held message of one connection becomes due now; audited with the count."""
        n = await service.release_connection(body.connection, token.actor, body.reason)
        return Count(count=n)

    @r.post("/purge", response_model=Count, summary="Delete a connection's held mail")
    async def purge_connection(body: BulkAction, token: Operator) -> Count:
        """Every held message of one connection is deleted; audited with the count."""
        n = await service.purge_connection(body.connection, token.actor, body.reason)
        return Count(count=n)

    @r.post(
        "/{queue_id}/hold",
        response_model=Count,
        summary="Hold a message",
        responses=problems(404, 409),
    )
    async def hold_message(queue_id: str, body: Reason, token: Operator) -> Count:
        """It is not delivered until released. 409: it is held already."""
        return Count(count=await service.hold(queue_id, token.actor, body.reason))

    @r.post(
        "/{queue_id}/release",
        response_model=Count,
        summary="Release a held message",
        responses=problems(404, 409),
    )
    async def release_message(queue_id: str, body: Reason, token: Operator) -> Count:
        """A held message becomes due now. 409: it is not held (retry fits deferred mail)."""
        return Count(count=await service.release(queue_id, token.actor, body.reason))

    @r.post(
        "/{queue_id}/retry",
        response_model=Count,
        summary="Retry a deferred message now",
        responses=problems(404, 409),
    )
    async def retry_message(queue_id: str, body: Reason, token: Operator) -> Count:
        """A deferred message becomes due now. 409: it is not deferred."""
        return Count(count=await service.retry(queue_id, token.actor, body.reason))

    @r.delete(
        "/{queue_id}",
        response_model=Count,
        summary="Delete a queued message",
        responses=problems(404),
    )
    async def delete_message(
        queue_id: str,
        token: Operator,
        reason: Annotated[str, Query(max_length=TEXT, description="why (audited)")] = "",
    ) -> Count:
        """It is gone, undelivered and unbounced; audited."""
        return Count(count=await service.delete(queue_id, token.actor, reason))

    return r
