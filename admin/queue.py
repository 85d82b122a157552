"""`/v1/queue`: list, summarize and show queued mail; hold, release, delete, retry, bounce
it by id or by a filter; flush; bulk per connection.

Reading needs `viewer`, but a message's body (`?body=true`) `operator`, and
each body read is audited (both in `QueueService.show_body`); every change
needs `operator`. The list (`GET /v1/queue`) and the summary
(`GET /v1/queue/summary`, the queue by destination domain or connection and
age, like qshape) take one filter, as query parameters: `state`,
`connection`, `sender`, `recipient`, `domain`, `older_than`, `newer_than`
(durations such as 30m, 2h, 3d, or seconds). `POST /v1/queue/actions` acts on
what the same filter selects, given in its body with `action` (hold,
release, delete, retry, bounce), `reason`, `all` (needed when no filter field
is given) and `dry_run` (count only); it is audited once with the filter and
the count. `POST /v1/queue/flush` makes every deferred message due now.
`POST /v1/queue/release` and `POST /v1/queue/purge` act on all held mail of
one connection; deleting and purging are audited with the count (in
`QueueService`). The list is a page by queue id, oldest first
(`admin.pages`; the spools page by id themselves).
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from admin.auth import Authority
from admin.errors import problems
from admin.pages import DEFAULT_LIMIT, Cursor, Limit, PageOut, page_out
from admin.schemas import (
    DURATION_IN,
    TEXT,
    BulkAction,
    Count,
    MailDetail,
    MailOut,
    QueueActionIn,
    QueueActionOut,
    QueueShapeOut,
    Reason,
    State,
)
from ugem.core.queue_filter import Criteria
from ugem.core.queue_shape import DEFAULT_TOP, MAX_TOP, By
from ugem.core.services.mailqueue import QueueService
from ugem.core.services.tokens import ApiToken, Role


def criteria(
    state: State | None = None,
    connection: Annotated[
        str | None, Query(max_length=255, description="origin connection")
    ] = None,
    sender: Annotated[
        str | None, Query(max_length=320, description="an address, @domain, <> for bounces")
    ] = None,
    recipient: Annotated[
        str | None, Query(max_length=320, description="address or @domain")
    ] = None,
    domain: Annotated[
        str | None, Query(max_length=255, description="a domain of the recipients to deliver")
    ] = None,
    older_than: Annotated[str | None, Query(max_length=40, description=DURATION_IN)] = None,
    newer_than: Annotated[str | None, Query(max_length=40, description=DURATION_IN)] = None,
) -> Criteria:
    """The filter of the list and the summary, from the query."""
    return Criteria(state, connection, sender, recipient, domain, older_than, newer_than)


Filter = Annotated[Criteria, Depends(criteria)]


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
        where: Filter, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
    ) -> PageOut[MailOut]:
        """Every worker's queued mail the filter selects, oldest first, without text."""
        return page_out(await service.page(where, limit, cursor), MailOut.of)

    @r.get(
        "/summary",
        response_model=QueueShapeOut,
        dependencies=[Depends(viewer)],
        summary="Queued mail by destination and age",
    )
    async def summarize(
        where: Filter,
        by: By = "destination",
        top: Annotated[int, Query(ge=1, le=MAX_TOP, description="rows shown")] = DEFAULT_TOP,
    ) -> QueueShapeOut:
        """The messages the filter selects counted by destination domain (or origin
        connection) in age buckets (0-5, 5-10, 10-20, 20-40, 40-80, 80-160, 160-320,
        320+ minutes since received), like Postfix's qshape: the `top` rows with the most
        messages, the rest summed as `other`, and the total."""
        return QueueShapeOut.of(await service.summary(where, by, top))

    @r.post(
        "/actions",
        response_model=QueueActionOut,
        summary="Act on the queued mail a filter selects",
    )
    async def act(body: QueueActionIn, token: Operator) -> QueueActionOut:
        """Hold, release, delete, retry (due now) or bounce (return to the sender with a
        DSN, then delete) every message the filter selects that the action fits; a
        filter with no field needs `all`; `dry_run` only counts. Audited once."""
        where = body.criteria()
        count = await service.bulk(
            body.action, where, token.actor, body.reason, everything=body.all, dry_run=body.dry_run
        )
        return QueueActionOut(
            action=body.action, count=count, dry_run=body.dry_run, filter=where.given()
        )

    @r.post("/flush", response_model=Count, summary="Make every deferred message due now")
    async def flush(body: Reason, token: Operator) -> Count:
        """Like Postfix's `postqueue -f`; audited with the count."""
        return Count(count=await service.flush(token.actor, body.reason))

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

    @r.post(
        "/{queue_id}/bounce",
        response_model=Count,
        summary="Return a message to its sender",
        responses=problems(404),
    )
    async def bounce_message(queue_id: str, body: Reason, token: Operator) -> Count:
        """A DSN to its sender ("deleted by the postmaster: <reason>"), then it is
        deleted; audited."""
        return Count(count=await service.bounce(queue_id, token.actor, body.reason))

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
