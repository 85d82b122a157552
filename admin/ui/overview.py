"""The Overview page (/ui/): the node at a glance, for any signed-in role.

The queue by state, the connections by state, the open incidents and each
worker's readiness come from the status service (`StatusService.status`, the
one behind `ugem status` and /v1/status); the age of the oldest queued
message from the queue service (the first of its list, oldest first); the
messages in and out per minute of the last hour from the message index
(`MessageService.rate`, the one behind /v1/messages/rate; `admin.ui.rate`
draws them); the gateway's addresses on the blocklists, with their open
incidents, from the reputation watch (`admin.ui.blocklists`). A part that
cannot be read is shown as unavailable with the reason the service gives
(`NodeStatus.problems`, the index's failure); the message index turned off
(`[log] index_days` 0) is said so; without a status service (a test's API)
the page says the node's status is not available.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from admin.ui.blocklists import blocklist_state
from admin.ui.console import Console
from admin.ui.rate import drawings
from ugem.core.errors import ConflictError, SpoolError, StoreError
from ugem.core.services.messages import Rate


def router(console: Console) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    services = console.services

    async def oldest_age(now: float) -> float | None:
        try:
            first = await services.queue.list(limit=1)
        except SpoolError:
            return None
        return now - first[0].received_at if first else 0.0

    async def rate() -> tuple[Rate | None, str]:
        """The last hour's rate; or None, and the index's failure ("": it is off)."""
        if services.messages is None:
            return None, ""
        try:
            return await services.messages.rate(), ""
        except ConflictError:
            return None, ""
        except StoreError as exc:
            return None, str(exc)

    @r.get("/")
    async def overview(request: Request) -> Response:
        visitor = await console.signed_in(request)
        status = None if services.status is None else await services.status.status()
        now = services.queue.clock.now()
        flow, flow_problem = await rate()
        return console.renderer.page(
            visitor,
            "overview.html",
            status=status,
            oldest=await oldest_age(now),
            now=now,
            rate=flow,
            rate_problem=flow_problem,
            charts=None if flow is None else drawings(flow, visitor.words),
            gateway=await blocklist_state(services.reputation, services.incidents),
        )

    return r
