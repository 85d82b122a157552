"""`/v1/drain`: drain this node into another, follow it, take the node back.

`POST /v1/drain` (admin) with `{"to", "token", "reason"}` starts a drain as a
task of the worker that answers (`DrainService.start`: the request is written
and audited first; the node then takes no mail and starts no delivery) and
answers 202 with the status; the run hands every queued message to the node
at `to` (its admin listener) with `token`, one of that node's admin tokens,
which is never kept, logged or shown. `GET /v1/drain` (viewer) is the status
as every worker of the node sees it: the request, each running worker's
answer, the last run's report (moved, already there, failed with reasons,
left; state done once the queue is empty). `POST /v1/drain/stop-accepting`
(admin, `{"reason"}`) takes the node out of service without moving its mail:
it takes no mail and goes on delivering its queue (`left` in the answer:
the messages still queued; 409 while it drains into another node).
`DELETE /v1/drain` (admin)
cancels: the node takes mail and delivers again (200, also when it was not
draining). A drain already running is 409; a bad `to` is 422.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from admin.auth import Authority
from admin.drain_schemas import DrainIn, DrainOut
from admin.errors import problems
from admin.schemas import TEXT, Reason
from ugem.core.services.drain import DrainService
from ugem.core.services.tokens import ApiToken, Role


def router(service: DrainService, auth: Authority) -> APIRouter:
    r = APIRouter(prefix="/drain", tags=["drain"])
    Admin = Annotated[ApiToken, Depends(auth.require(Role.ADMIN))]

    @r.get(
        "",
        response_model=DrainOut,
        dependencies=[Depends(auth.require(Role.VIEWER))],
        summary="Show the drain's status",
    )
    async def drain_status() -> DrainOut:
        """Whether the node is draining, into which node, each worker's answer and the
        last run's report."""
        return DrainOut.of(service.status())

    @r.post(
        "",
        response_model=DrainOut,
        status_code=202,
        summary="Drain this node into another",
        responses=problems(409),
    )
    async def start_drain(body: DrainIn, token: Admin) -> DrainOut:
        """The node stops taking and delivering mail and hands its queue to the node at
        `to`, with `token` (never kept). 409: a drain is running already."""
        status = await service.start(body.to, body.token, token.actor, body.reason)
        return DrainOut.of(status)

    @r.post(
        "/stop-accepting",
        response_model=DrainOut,
        status_code=202,
        summary="Stop accepting mail, keep delivering",
        responses=problems(409),
    )
    async def stop_accepting(body: Reason, token: Admin) -> DrainOut:
        """The node takes no mail (SMTP 421, /readyz 503) and delivers its queue; `left`
        says how many messages are still queued. 409: it drains into another node."""
        status = await service.stop_accepting(token.actor, body.reason)
        return DrainOut.of(status, left=await service.left())

    @r.delete("", response_model=DrainOut, summary="Cancel the drain")
    async def cancel_drain(
        token: Admin,
        reason: Annotated[str, Query(max_length=TEXT, description="why (audited)")] = "",
    ) -> DrainOut:
        """The node takes and delivers mail again (also when it was not draining)."""
        return DrainOut.of(await service.cancel(token.actor, reason))

    return r
