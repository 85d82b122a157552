"""`/v1/reputation`: the gateway's standing on the blocklists, and the complaints it got.

Reading needs `viewer`. `GET /v1/reputation` is `ReputationService.report()`
as it is (nothing is looked up for the request): the addresses of `[node]
public_addresses` and the zones of `[reputation] dnsbl_zones`, whether any
address is listed, the last check's time, and whether this process watches at
all (with `--workers N`, worker 0 does; the others answer with no standings).
`GET /v1/reputation/standings` pages the standings, one per address and zone,
by address then zone: the state (listed, clear, unusable, unknown), since
when, the list's reason and the last check's time. Neither raises.

`GET /v1/reputation/complaints` pages the feedback-loop complaints kept in
the store (every worker's and node's: `ComplaintService.page`), newest first:
of one `connection` (empty: the untraced ones), received at or after `since`,
with how many were received, are kept and were dropped beyond the cap. A store
that fails is 503.
"""

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from admin.auth import Authority
from admin.pages import DEFAULT_LIMIT, Cursor, Limit, PageOut, page_out
from admin.schemas import ComplaintsOut, ReputationOut, StandingOut
from admin.times import TIME_IN
from ugem.core.services.complaints import ComplaintService
from ugem.core.services.reputation import ReputationService
from ugem.core.services.tokens import Role
from ugem.core.times import unix_time


def router(service: ReputationService, auth: Authority, complaints: ComplaintService) -> APIRouter:
    r = APIRouter(
        prefix="/reputation",
        tags=["reputation"],
        dependencies=[Depends(auth.require(Role.VIEWER))],
    )

    @r.get("", response_model=ReputationOut, summary="Show the gateway's blocklist standing")
    async def show_reputation() -> ReputationOut:
        """Whether any of the gateway's addresses is listed, as the last check found it."""
        return ReputationOut.of(service.report(), service.watching, service.interval)

    @r.get(
        "/standings",
        response_model=PageOut[StandingOut],
        summary="List the standings per address and blocklist",
    )
    async def list_standings(
        limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
    ) -> PageOut[StandingOut]:
        """One per address and zone checked, by address then zone."""
        return page_out(service.standings(limit, cursor), StandingOut.of)

    @r.get("/complaints", response_model=ComplaintsOut, summary="List feedback-loop complaints")
    async def list_complaints(
        connection: Annotated[
            str | None, Query(max_length=255, description="empty: the complaints not traced")
        ] = None,
        since: Annotated[dt.datetime | None, Query(description=TIME_IN)] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> ComplaintsOut:
        """Complaints newest first, as filtered, with the journal's tally."""
        start = None if since is None else unix_time(since)
        found = await complaints.page(connection, start, limit, cursor)
        return ComplaintsOut.of(await complaints.tally(), found)

    return r
