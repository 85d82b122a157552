"""The Audit page: the audit log, newest first, filtered and paged like the API, and its chain.

GET /ui/audit takes the filter of GET /v1/audit as its query: `actor`,
`action`, `target` (what was changed: a connection, an application, a queue
id...), and a time window `since` / `until` (`ugem.core.services.audit
.window_of`: RFC 3339, Unix time or a date, Asia/Almaty without a zone); a
field left empty is not given. It shows a page of `AuditLog.page` (keyset on
the record's seq, `ugem.core.paging`, `LIMIT` a page, with the total of the
matching records; the next page's link keeps the filter) and the state of the
hash chain (`AuditLog.verify`, as `ugem audit verify` and /v1/audit/verify:
whole, or the problems it names). A bad field is the service's `UsageError`
(422, named). Reading needs `viewer`; the page changes nothing.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from admin.ui.console import Console
from ugem.core.services.audit import window_of

LIMIT = 50  # records a page
FIELDS = ("actor", "action", "target", "since", "until")
MAX_FIELD = 255  # characters of a field kept (the API's bound)


def filter_of(values: dict[str, str]) -> dict[str, str]:
    """The filter fields given (stripped, not empty)."""
    given = {name: values.get(name, "").strip()[:MAX_FIELD] for name in FIELDS}
    return {name: value for name, value in given.items() if value}


def router(console: Console) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    audit = console.services.audit

    @r.get("/audit")
    async def show_audit(request: Request, cursor: str | None = None) -> Response:
        visitor = await console.signed_in(request)
        given = filter_of(dict(request.query_params))
        window = window_of(given.get("since"), given.get("until"))
        page = await audit.page(
            given.get("target"),
            given.get("actor"),
            given.get("action"),
            LIMIT,
            cursor,
            window=window,
        )
        return console.renderer.page(
            visitor,
            "audit.html",
            given=given,
            fields=FIELDS,
            page=page,
            verdict=await audit.verify(),
            here_query=urlencode(given),
        )

    return r
