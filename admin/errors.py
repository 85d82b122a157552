"""How every error of the admin listener becomes one body: RFC 9457 `application/problem+json`.

Each error answer is a `Problem`: `type` (a `urn:ugem:problem:<name>` URI, one per
kind below), `title` (that kind, for a person), `status`, `detail` (this
occurrence: what was wrong and what to do); input errors add `errors`, one
`FieldProblem` per field (`loc`, FastAPI's location such as `["query", "limit"]`;
`pointer`, a JSON pointer into the body such as `#/contacts/0/email`, null for
a query or path parameter; `detail`; `type`). `problem(status, detail)` builds
one (also for `admin.auth` and `admin.body_limit`, which answer before the app;
`problem_body` the same as data, for `admin.http_protocol`, which answers below HTTP).

| status | when |
|---|---|
| 400 | the body is not JSON: `detail` says where it breaks (line, column, character) |
| 401 | no token, or an unknown or revoked one (`admin.auth`) |
| 403 | the token's role is too weak (`admin.auth`), or `ForbiddenError` |
| 404 | `NotFoundError`, or no such route (`detail` names the path) |
| 405 | the route takes other methods (`detail` names them; `Allow` too) |
| 408 | the request's head or body came too slowly (`admin.http_protocol`) |
| 409 | `ConflictError`: the state forbids it; `detail` says what to do |
| 413 | the body is over the limit (`admin.body_limit`) |
| 422 | FastAPI's validation errors and `UsageError`, each with `errors` |
| 503 | a failing store or spool (`StoreError`, `SpoolError`); too many admin connections |
| 500 | anything else (a bug): a fixed text; the traceback goes to the log only |

Validation never fails itself: Python's JSON parser takes `NaN`, `Infinity` and
`1e999`, which JSON cannot carry back, so such an input is named as
`"<field>: NaN is not a finite number"` (the input models refuse them too,
`admin.schemas.In`).

The OpenAPI schema shows, per operation, only what it can answer
(`document`): 401 and 503 on every /v1/ route (the token is read from the
store), 403 on one that needs a role above viewer, 400 and 413 on one that
takes a body, 422 on one with parameters or a body, and what a route
declares itself with `responses=problems(404, 409)`. Every error is
documented as `application/problem+json` with the `Problem` schema.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from ugem.core.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    SpoolError,
    StoreError,
    UsageError,
)
from ugem.core.log import event

MEDIA_TYPE = "application/problem+json"
log = logging.getLogger(__name__)


class FieldProblem(BaseModel):
    loc: list[str | int] = Field(description='where: ["body", "reason"], ["query", "limit"], ...')
    pointer: str | None = Field(
        description="a JSON pointer into the body (#/contacts/0/email); null outside the body"
    )
    detail: str = Field(description="what is wrong with it and what is allowed")
    type: str = Field(description="the kind of error (pydantic's name), e.g. missing")


class Problem(BaseModel):
    """An error, as RFC 9457 draws it (`application/problem+json`)."""

    type: str = Field(description="urn:ugem:problem:<name>: the kind of problem")
    title: str = Field(description="the kind of problem, for a person")
    status: int = Field(description="the HTTP status")
    detail: str = Field(description="this occurrence: what was wrong and what to do")
    errors: list[FieldProblem] | None = Field(
        None, description="400 and 422: one per field that is wrong"
    )


KINDS: dict[int, tuple[str, str, str]] = {  # status: (name, title, when, in the schema)
    400: ("invalid-json", "The body is not valid JSON", "the body is not JSON; says where"),
    401: ("unauthorized", "A valid token is needed", "no token, or an unknown or revoked one"),
    403: ("forbidden", "The token's role is too weak", "the token's role is too weak"),
    404: ("not-found", "Not found", "no such id"),
    405: ("method-not-allowed", "Method not allowed", "the route takes other methods"),
    408: ("timeout", "The request came too slowly", "the head or body came too slowly"),
    409: ("conflict", "Contradicts the current state", "the state forbids it; says what to do"),
    413: ("too-large", "The body is too large", "the body is over what the route takes"),
    422: ("invalid-input", "The input is not valid", "the input is not valid; names each field"),
    500: ("internal", "Internal error", "a bug: the node's log has the details"),
    503: ("unavailable", "Unavailable", "the store or the spool failed; try again"),
}

_STATUS: dict[type[Exception], int] = {
    ForbiddenError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    StoreError: 503,
    SpoolError: 503,
}


def status_of(exc: Exception) -> int | None:
    """The status the API answers a service's error with (a `UsageError`: 422); None for
    an error that is not a service's (a bug: 500). The web console answers the same."""
    if isinstance(exc, UsageError):
        return 422
    return next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), None)


def problem_body(
    status: int, detail: str, errors: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """The `Problem` of an error, as JSON data."""
    name, title, _ = KINDS.get(status, ("error", HTTPStatus(status).phrase, ""))
    body: dict[str, Any] = {
        "type": f"urn:ugem:problem:{name}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = list(errors)
    return body


def problem(
    status: int,
    detail: str,
    errors: Sequence[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The `application/problem+json` answer of an error."""
    body = problem_body(status, detail, errors)
    return JSONResponse(body, status, headers=dict(headers or {}), media_type=MEDIA_TYPE)


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route for the errors it declares itself (404, 409, ...)."""
    return {code: {"model": Problem, "description": KINDS[code][2]} for code in codes}


def field_of(message: str) -> str:
    """The field a service's message names first ("reason: empty; ..." -> "reason")."""
    head, sep, _ = message.partition(":")
    return head.strip() if sep and head.strip().replace("_", "").isalnum() else "body"


def pointer(loc: Sequence[str | int]) -> str | None:
    """The JSON pointer of a body location (["body", "a", 0] -> "#/a/0"); None elsewhere."""
    if not loc or loc[0] != "body":
        return None
    parts = (str(p).replace("~", "~0").replace("/", "~1") for p in loc[1:])
    return "#/" + "/".join(parts) if len(loc) > 1 else "#"


def _field(loc: Sequence[str | int], detail: str, kind: str) -> dict[str, Any]:
    return {"loc": list(loc), "pointer": pointer(loc), "detail": detail, "type": kind}


def _summary(fields: Sequence[Mapping[str, Any]]) -> str:
    first = fields[0]["detail"] if fields else "the input is not valid"
    more = len(fields) - 1
    return first if more < 1 else f"{first} (and {more} more: see errors)"


async def _usage(request: Request, exc: Exception) -> JSONResponse:
    msg = str(exc)
    name = field_of(msg)
    where = (
        "query"
        if name in request.query_params
        else "path"
        if name in request.path_params
        else "body"
    )
    fields = [_field([where, name] if name != "body" else ["body"], msg, "value_error")]
    return problem(422, msg, fields)


def _finite(value: Any) -> Any:
    """`value` with every NaN or infinity (at any depth) as the text JSON would need."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _validation_field(error: Any) -> dict[str, Any]:
    """One of FastAPI's validation errors as a `FieldProblem`; non-finite input named."""
    out = jsonable_encoder(error)
    loc = [p if isinstance(p, int) else str(p) for p in out.get("loc", [])]
    given, msg, kind = out.get("input"), str(out.get("msg", "")), str(out.get("type", ""))
    name = (".".join(str(part) for part in loc[1:]) or str(loc[0])) if loc else "body"
    if isinstance(given, float) and not math.isfinite(given):
        msg = f"{name}: {_finite(given)} is not a finite number; give a finite number"
        kind = "finite_number"
    elif not msg.startswith(f"{name}:"):
        msg = f"{name}: {msg}"
    return _field(loc, msg, kind)


def _where_json_breaks(error: Mapping[str, Any], body: Any) -> str:
    pos = error.get("loc", ("body", 0))[-1]
    reason = str(error.get("ctx", {}).get("error", "not JSON"))
    if not isinstance(pos, int) or not isinstance(body, str | bytes):
        return f"the body is not valid JSON: {reason}"
    text = body if isinstance(body, str) else body.decode("utf-8", "replace")
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"the body is not valid JSON: {reason} at line {line} column {column} (character {pos})"


async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    broken = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if broken is not None and isinstance(exc, RequestValidationError):
        detail = _where_json_breaks(broken, exc.body)
        return problem(400, detail, [_field(["body"], detail, "json_invalid")])
    fields = [_validation_field(e) for e in errors]
    return problem(422, _summary(fields), _finite(fields))


async def _plain(_: Request, exc: Exception) -> JSONResponse:
    status = next(code for kind, code in _STATUS.items() if isinstance(exc, kind))
    return problem(status, str(exc))


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    detail, headers = str(exc.detail), dict(exc.headers or {})
    if exc.status_code == 404 and detail == HTTPStatus.NOT_FOUND.phrase:
        detail = f"no route {request.url.path}; the API is under /v1/ (see /docs)"
    elif exc.status_code == 405:
        allowed = _methods(request) or headers.get("Allow", "")
        headers["Allow"] = allowed
        detail = f"{request.method} is not allowed on {request.url.path}; it takes {allowed}"
    return problem(exc.status_code, detail, headers=headers)


def _methods(request: Request) -> str:
    """Every method the schema documents for the path (Starlette's 405 names the first
    route's only), as an `Allow` header: "GET, PATCH"."""
    found: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        if re.fullmatch(re.sub(r"\\{[^/]+\\}", "[^/]+", re.escape(template)), request.url.path):
            found |= {method.upper() for method in operations}
    return ", ".join(sorted(found))


async def _bug(request: Request, exc: Exception) -> JSONResponse:
    event(log, "admin_error", logging.ERROR, exc_info=True, path=request.url.path, error=repr(exc))
    return problem(500, "internal error; the node's log has the details")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(UsageError, _usage)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _bug)
    for kind in _STATUS:
        app.add_exception_handler(kind, _plain)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]


# -- the OpenAPI schema ------------------------------------------------------------------


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        document(schema)
        app.openapi_schema = schema
    return app.openapi_schema


def _schema_of(answer: Mapping[str, Any]) -> Any:
    return answer.get("content", {}).get("application/json", {}).get("schema")


def codes_of(path: str, operation: Mapping[str, Any]) -> set[int]:
    """The errors an operation can answer whatever it declares (see the module's docstring),
    from what its schema says: under /v1/, a body, parameters, the roles it names."""
    codes: set[int] = {401, 503} if path.startswith("/v1/") else set()
    if "requestBody" in operation:
        codes |= {400, 413, 422}
    if operation.get("parameters"):
        codes.add(422)
    roles = {
        role for need in operation.get("security", []) for roles in need.values() for role in roles
    }
    if roles - {"viewer"}:
        codes.add(403)
    return codes


def document(schema: dict[str, Any]) -> None:
    """Give each operation of `schema` exactly its errors, as problem+json (in place)."""
    ref = {"$ref": "#/components/schemas/Problem"}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    found = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(found.pop("$defs", {}))
    components["Problem"] = found
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            answers = operation.setdefault("responses", {})
            answers.pop("422", None)  # FastAPI's own validation shape: ours is a Problem
            declared = {k for k, a in answers.items() if _schema_of(a) == ref}  # problems()
            for code in sorted(codes_of(path, operation) | {int(k) for k in declared}):
                if str(code) in answers and str(code) not in declared:
                    continue  # an answer of its own (/readyz's 503 is a Readiness)
                description = answers.get(str(code), {}).get("description") or KINDS[code][2]
                content = {MEDIA_TYPE: {"schema": ref}}
                answers[str(code)] = {"description": description, "content": content}
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
