"""`/v1/tokens`: create (the secret is in the answer, once), list and revoke API tokens.

All need `admin`. Revoking keeps the token for the record (its name stays
taken) and is audited.
"""

from typing import Annotated

from fastapi import APIRouter, Depends

from admin.auth import Authority
from admin.schemas import Reason, TokenCreate, TokenCreated, TokenOut
from ugem.core.services.tokens import ApiToken, Role, TokenService


def router(service: TokenService, auth: Authority) -> APIRouter:
    r = APIRouter(prefix="/tokens", tags=["tokens"])
    Admin = Annotated[ApiToken, Depends(auth.require(Role.ADMIN))]

    @r.get("", response_model=list[TokenOut])
    async def list_tokens(_: Admin) -> list[TokenOut]:
        return [TokenOut.of(t) for t in await service.list()]

    @r.post("", response_model=TokenCreated, status_code=201)
    async def create_token(body: TokenCreate, token: Admin) -> TokenCreated:
        made, secret = await service.create(body.name, body.role, token.actor)
        return TokenCreated(**TokenOut.of(made).model_dump(), token=secret)

    @r.post("/{name}/revoke", response_model=TokenOut)
    async def revoke_token(name: str, body: Reason, token: Admin) -> TokenOut:
        return TokenOut.of(await service.revoke(name, token.actor, body.reason))

    return r
