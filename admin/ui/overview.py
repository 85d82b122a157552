"""The Overview page (/ui/): the node at a glance, for any signed-in role.

The queue by state, the connections by state, the open incidents and each
worker's readiness come from the status service (`StatusService.status`, the
one behind `ugem status` and /v1/status); the age of the oldest queued
message from the queue service (the first of its list, oldest first). A
part that cannot be read is shown as unavailable with the reason the service
gives (`NodeStatus.problems`); without a status service (a test's API) the
page says the node's status is not available. Messages per minute and the
blocklist state are the next step.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from admin.ui.console import Console, sign_in_first
from ugem.core.errors import SpoolError


def router(console: Console) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    services = console.services

    async def oldest_age(now: float) -> float | None:
        try:
            first = await services.queue.list(limit=1)
        except SpoolError:
            return None
        return now - first[0].received_at if first else 0.0

    @r.get("/")
    async def overview(request: Request) -> Response:
        visitor = await console.visitor(request)
        if visitor.token is None:
            return sign_in_first()
        status = None if services.status is None else await services.status.status()
        now = services.queue.clock.now()
        return console.renderer.page(
            visitor, "overview.html", status=status, oldest=await oldest_age(now), now=now
        )

    return r
