"""`/v1/tokens`: create (the secret is in the answer, once), list and revoke API tokens.

All need `admin`. Revoking keeps the token for the record (its name stays
taken) and is audited. The list is a page by name (`admin.pages`).
"""

from typing import Annotated

from fastapi import APIRouter, Depends

from admin.auth import Authority
from admin.errors import problems
from admin.pages import DEFAULT_LIMIT, Cursor, Limit, PageOut, page_out
from admin.schemas import Reason, TokenCreate, TokenCreated, TokenOut
from ugem.core.services.tokens import ApiToken, Role, TokenService


def router(service: TokenService, auth: Authority) -> APIRouter:
    r = APIRouter(prefix="/tokens", tags=["tokens"])
    Admin = Annotated[ApiToken, Depends(auth.require(Role.ADMIN))]

    @r.get("", response_model=PageOut[TokenOut], summary="List API tokens")
    async def list_tokens(
        _: Admin, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
    ) -> PageOut[TokenOut]:
        """Every token ever made, revoked ones too, by name; never a secret."""
        return page_out(await service.page(limit, cursor), TokenOut.of)

    @r.post(
        "",
        response_model=TokenCreated,
        status_code=201,
        summary="Create an API token",
        responses=problems(409),
    )
    async def create_token(body: TokenCreate, token: Admin) -> TokenCreated:
        """The answer holds the secret, this once (it is stored as a hash). 409: the name is
        taken (a revoked token's too)."""
        made, secret = await service.create(body.name, body.role, token.actor)
        return TokenCreated(**TokenOut.of(made).model_dump(), token=secret)

    @r.post(
        "/{name}/revoke",
        response_model=TokenOut,
        summary="Revoke an API token",
        responses=problems(404, 409),
    )
    async def revoke_token(name: str, body: Reason, token: Admin) -> TokenOut:
        """It is refused from now on; kept for the record. 409: revoked already."""
        return TokenOut.of(await service.revoke(name, token.actor, body.reason))

    return r
