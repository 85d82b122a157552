"""Bearer-token authentication and role checks for the /v1/ API.

`Authority(tokens).require(role)` is a FastAPI dependency: no (or a malformed)
`Authorization: Bearer` header answers 401, a token that is unknown or revoked
answers 401, a token whose role is below `role` answers 403 naming the role
needed; otherwise it gives the `ApiToken`, whose `actor` the handler passes
to the service for the audit log. The comparison itself is constant-time
(`TokenService.authenticate`).
"""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ugem.services.tokens import ApiToken, Role, TokenService

CHALLENGE = {"WWW-Authenticate": "Bearer"}
bearer = HTTPBearer(auto_error=False, description="a token from `ugem token create`")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
Check = Callable[[HTTPAuthorizationCredentials | None], Awaitable[ApiToken]]


class Authority:
    def __init__(self, tokens: TokenService) -> None:
        self.tokens = tokens

    def require(self, role: Role) -> Check:
        async def check(credentials: Credentials) -> ApiToken:
            if credentials is None:
                raise HTTPException(401, "a bearer token is required", headers=CHALLENGE)
            token = await self.tokens.authenticate(credentials.credentials)
            if token is None:
                raise HTTPException(401, "the token is unknown or revoked", headers=CHALLENGE)
            if not token.role.allows(role):
                raise HTTPException(
                    403, f"this needs the {role} role; token {token.name!r} is {token.role}"
                )
            return token

        return check
