"""`/v1/reputation`: the gateway's standing on the blocklists, and the complaints it got.

Reading needs `viewer`. `GET /v1/reputation` is `ReputationService.report()`
as it is (nothing is looked up for the request): per address of `[node]
public_addresses` and zone of `[reputation] dnsbl_zones`, the state (listed,
clear, unusable, unknown), since when, the list's reason and the last check's
time, and whether this process watches at all (with `--workers N`, worker
0 does; the others answer with no standings). Never raises.

`GET /v1/reputation/complaints` lists the feedback-loop complaints kept in
the store (every worker's and node's: `ComplaintService.list`), newest first:
of one `connection` (empty: the untraced ones), received at or after `since`
(ISO 8601, Asia/Almaty time without a zone, or Unix time), at most `limit`
(1 to 1000, 100 by default), with how many were received, are kept and were
dropped beyond the cap. A store that fails is 503.
"""

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from admin.auth import Authority
from admin.schemas import ComplaintsOut, ReputationOut
from ugem.core.services.complaints import ComplaintService
from ugem.core.services.reputation import ReputationService
from ugem.core.services.tokens import Role
from ugem.core.workdays import unix_time


def router(service: ReputationService, auth: Authority, complaints: ComplaintService) -> APIRouter:
    r = APIRouter(
        prefix="/reputation",
        tags=["reputation"],
        dependencies=[Depends(auth.require(Role.VIEWER))],
    )

    @r.get("", response_model=ReputationOut)
    async def show_reputation() -> ReputationOut:
        return ReputationOut.of(service.report(), service.watching, service.interval)

    @r.get("/complaints", response_model=ComplaintsOut)
    async def list_complaints(
        connection: Annotated[str | None, Query(max_length=255)] = None,
        since: Annotated[
            dt.datetime | None,
            Query(description="ISO 8601 (Asia/Almaty time without a zone) or Unix time"),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> ComplaintsOut:
        start = None if since is None else unix_time(since)
        found = await complaints.list(connection, start, limit)
        return ComplaintsOut.of(await complaints.tally(), found)

    return r
