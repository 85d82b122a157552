"""How the project's errors become HTTP answers, in one place.

`UsageError` is 422 in FastAPI's own validation shape (`detail` is a list of
`{loc, msg, type}`; `loc` names the field the message starts with), so every
422 has one schema; `NotFoundError` is 404, `ConflictError` 409, a failing
store or spool 503, each with `{"detail": "<what to do>"}`. `ERRORS` documents
these answers in the OpenAPI schema of every /v1/ route.
"""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ugem.errors import ConflictError, NotFoundError, SpoolError, StoreError, UsageError


class Problem(BaseModel):
    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no token, or an unknown or revoked one"},
    403: {"model": Problem, "description": "the token's role is too weak"},
    404: {"model": Problem, "description": "no such id"},
    409: {"model": Problem, "description": "contradicts the current state; says what to do"},
    503: {"model": Problem, "description": "the store or the spool failed; try again"},
}

_STATUS: dict[type[Exception], int] = {
    NotFoundError: 404,
    ConflictError: 409,
    StoreError: 503,
    SpoolError: 503,
}


def field_of(message: str) -> str:
    """The field a service's message names first ("reason: empty; ..." -> "reason")."""
    head, sep, _ = message.partition(":")
    return head.strip() if sep and head.strip().replace("_", "").isalnum() else "body"


async def _usage(_: Request, exc: Exception) -> JSONResponse:
    msg = str(exc)
    detail = [{"loc": ["body", field_of(msg)], "msg": msg, "type": "value_error"}]
    return JSONResponse({"detail": detail}, status_code=422)


async def _plain(_: Request, exc: Exception) -> JSONResponse:
    status = next(code for kind, code in _STATUS.items() if isinstance(exc, kind))
    return JSONResponse({"detail": str(exc)}, status_code=status)


def install(app: FastAPI) -> None:
    app.add_exception_handler(UsageError, _usage)
    for kind in _STATUS:
        app.add_exception_handler(kind, _plain)
