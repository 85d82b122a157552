"""`/v1/drain`: drain this node into another, follow it, take the node back.

`POST /v1/drain` (admin) with `{"to", "token", "reason"}` starts a drain as a
task of the worker that answers (`DrainService.start`: the request is written
and audited first; the node then takes no mail and starts no delivery) and
answers 202 with the status; the run hands every queued message to the node
at `to` (its admin listener) with `token`, one of that node's admin tokens,
which is never kept, logged or shown. `GET /v1/drain` (viewer) is the status
as every worker of the node sees it: the request, each running worker's
answer, the last run's report (moved, already there, failed with reasons,
left; state done once the queue is empty). `DELETE /v1/drain` (admin)
cancels: the node takes mail and delivers again (200, also when it was not
draining). A drain already running is 409; a bad `to` is 422.
"""

from typing import Annotated

from fastapi import APIRouter, Depends

from admin.auth import Authority
from admin.drain_schemas import DrainIn, DrainOut
from ugem.core.services.drain import DrainService
from ugem.core.services.tokens import ApiToken, Role


def router(service: DrainService, auth: Authority) -> APIRouter:
    r = APIRouter(prefix="/drain", tags=["drain"])
    Admin = Annotated[ApiToken, Depends(auth.require(Role.ADMIN))]

    @r.get("", response_model=DrainOut, dependencies=[Depends(auth.require(Role.VIEWER))])
    async def drain_status() -> DrainOut:
        return DrainOut.of(service.status())

    @r.post("", response_model=DrainOut, status_code=202)
    async def start_drain(body: DrainIn, token: Admin) -> DrainOut:
        status = await service.start(body.to, body.token, token.actor, body.reason)
        return DrainOut.of(status)

    @r.delete("", response_model=DrainOut)
    async def cancel_drain(token: Admin, reason: str = "") -> DrainOut:
        return DrainOut.of(await service.cancel(token.actor, reason))

    return r
