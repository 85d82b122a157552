"""How the project's errors become HTTP answers, in one place.

`UsageError` is 422 in FastAPI's own validation shape (`detail` is a list of
`{loc, msg, type}`; `loc` names the field the message starts with), so every
422 has one schema; `ForbiddenError` is 403, `NotFoundError` 404,
`ConflictError` 409, a failing store or spool 503, each with
`{"detail": "<what to do>"}`. `ERRORS` documents these answers (and the 413 of
`admin.body_limit`) in the OpenAPI schema of every /v1/ route.

FastAPI's own 422 is rendered here too, never failing: Python's JSON parser
takes `NaN`, `Infinity` and `1e999` (a float overflowing to infinity), which
JSON cannot carry back, so such an input is refused as
`"<field>: NaN is not a finite number"` with the input given as a string
(the input models refuse non-finite floats, `admin.schemas.In`).
"""

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ugem.core.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    SpoolError,
    StoreError,
    UsageError,
)


class Problem(BaseModel):
    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no token, or an unknown or revoked one"},
    403: {"model": Problem, "description": "the token's role is too weak"},
    404: {"model": Problem, "description": "no such id"},
    409: {"model": Problem, "description": "contradicts the current state; says what to do"},
    413: {"model": Problem, "description": "the body is over [admin] max_body_size"},
    503: {"model": Problem, "description": "the store or the spool failed; try again"},
}

_STATUS: dict[type[Exception], int] = {
    ForbiddenError: 403,
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


def _finite(value: Any) -> Any:
    """`value` with every NaN or infinity (at any depth) as the text JSON would need."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _problem(error: Any) -> Any:
    """One of FastAPI's validation errors, safe to send as JSON; non-finite input named."""
    out = jsonable_encoder(error)
    given = out.get("input") if isinstance(out, dict) else None
    if isinstance(given, float) and not math.isfinite(given):
        field = ".".join(str(part) for part in out.get("loc", [])[1:]) or "body"
        out["msg"] = f"{field}: {_finite(given)} is not a finite number; give a finite number"
        out["type"] = "finite_number"
        out.pop("ctx", None)
    return _finite(out)


async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse({"detail": [_problem(e) for e in errors]}, status_code=422)


async def _plain(_: Request, exc: Exception) -> JSONResponse:
    status = next(code for kind, code in _STATUS.items() if isinstance(exc, kind))
    return JSONResponse({"detail": str(exc)}, status_code=status)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(UsageError, _usage)
    for kind in _STATUS:
        app.add_exception_handler(kind, _plain)
