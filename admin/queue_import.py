"""`POST /v1/queue/import`: a message another node's drain hands over to this one.

Needs `admin` (a drain moves mail between nodes: `ugem.core.services.drain`
on the sender, authenticated by a token of this node). The body is
`admin.drain_schemas.ImportIn`: a queued message's envelope, schedule, hold
and history, the text in base64. `TransferService.take` checks it against
this node's limits and makes it durable in this worker's spool under the
sender's queue id: 201 `{"result": "created"}` once it is fsynced, 200
`{"result": "already"}` when this node holds (or took) that id, so a retry
never queues it twice. 422 names what is wrong with the message (too large,
too many recipients, a bad address, not base64), 409 says this node is
being drained itself, 503 that its queue or spool is full or failing, 413
that the body is over what the route takes (`body_limit`: the largest
message in base64 and the largest envelope).
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from admin.auth import Authority
from admin.drain_schemas import ImportIn, ImportOut
from admin.errors import problems
from ugem.core.config import KIB
from ugem.core.services.tokens import ApiToken, Role
from ugem.core.services.transfer import TransferService

PATH = "/v1/queue/import"
ENVELOPE = 4 * KIB  # bytes of JSON per recipient (twice: rcpts and original_rcpts), at most


def body_limit(service: TransferService) -> int:
    """The largest body the route takes: the largest text in base64 and its envelope."""
    limits = service.limits
    text = 4 * (limits.max_size // 3 + 1)
    return text + 2 * limits.max_recipients * ENVELOPE + 64 * KIB


def router(service: TransferService, auth: Authority) -> APIRouter:
    r = APIRouter(prefix="/queue", tags=["queue"])
    Admin = Annotated[ApiToken, Depends(auth.require(Role.ADMIN))]

    @r.post(
        "/import",
        response_model=ImportOut,
        status_code=201,
        summary="Take a message from a node being drained",
        responses={
            200: {"model": ImportOut, "description": "this node has it already"},
            **problems(409),
        },
    )
    async def import_message(body: ImportIn, token: Admin, response: Response) -> ImportOut:
        """Machine to machine (`ugem drain`): the message is durable here once answered 201;
        200 if this node has (or took) that queue id. 409: this node is being drained."""
        result = await service.take(body.item(), body.source, token.actor)
        if result == "already":
            response.status_code = 200
        return ImportOut(id=body.id, result=result)

    return r
