"""Bearer-token authentication and role checks for the /v1/ API.

`AuthGate` is pure ASGI middleware in front of the app: every request under
`/v1/` is authenticated from its headers alone, before a byte of its body is
read or parsed (every refusal is an `admin.errors.problem`). No (or a
malformed) `Authorization: Bearer` header answers 401, a token that is unknown
or revoked answers 401 (with `Connection: close`, so an unread body is never
read), a store that cannot be read 503; otherwise
the `ApiToken` rides in the request's scope. `Authority().require(role)`
is a FastAPI dependency: it takes that token (401 if the gate left none),
answers 403 naming the role needed if the token's role is below `role`, and
gives the `ApiToken`, whose `actor` the handler passes to the service for the
audit log. The comparison itself is constant-time
(`TokenService.authenticate`).
"""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from admin.errors import problem
from ugem.core.errors import StoreError
from ugem.core.services.tokens import ApiToken, Role, TokenService

CHALLENGE = {"WWW-Authenticate": "Bearer"}
MISSING = "a bearer token is required"
UNKNOWN = "the token is unknown or revoked"
SCOPE_KEY = "ugem.token"  # where `AuthGate` leaves the authenticated ApiToken
bearer = HTTPBearer(auto_error=False, description="a token from `ugem token create`")
Check = Callable[[Request, HTTPAuthorizationCredentials | None], Awaitable[ApiToken]]


def bearer_secret(authorization: str | None) -> str | None:
    """The secret of an `Authorization: Bearer <secret>` header; None if absent or malformed."""
    scheme, _, secret = (authorization or "").partition(" ")
    secret = secret.strip()
    return secret if scheme.lower() == "bearer" and secret else None


class AuthGate:
    def __init__(self, app: ASGIApp, tokens: TokenService, prefix: str = "/v1/") -> None:
        self.app = app
        self.tokens = tokens
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        secret = bearer_secret(Headers(scope=scope).get("authorization"))
        refusal: JSONResponse | None = None
        token = None
        try:
            token = None if secret is None else await self.tokens.authenticate(secret)
        except StoreError as exc:
            refusal = problem(503, str(exc), headers={"Connection": "close"})
        if refusal is None and token is None:
            detail = MISSING if secret is None else UNKNOWN
            refusal = problem(401, detail, headers=CHALLENGE | {"Connection": "close"})
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        scope[SCOPE_KEY] = token
        await self.app(scope, receive, send)


class Authority:
    """The role checks of the routes (the tokens themselves are `AuthGate`'s)."""

    def require(self, role: Role) -> Check:
        # The bearer scheme with the role as its "scope" only documents the route in the
        # OpenAPI schema (`security: [{"HTTPBearer": ["operator"]}]`, OpenAPI 3.1's role
        # names, which `admin.errors.document` reads for the 403): the gate in front of
        # every /v1/ route has authenticated the request already.
        Credentials = Annotated[
            HTTPAuthorizationCredentials | None, Security(bearer, scopes=[str(role)])
        ]

        async def check(request: Request, credentials: Credentials) -> ApiToken:
            token = request.scope.get(SCOPE_KEY)
            if not isinstance(token, ApiToken):
                raise HTTPException(401, MISSING, headers=CHALLENGE)
            if not token.role.allows(role):
                raise HTTPException(
                    403, f"this needs the {role} role; token {token.name!r} is {token.role}"
                )
            return token

        return check
