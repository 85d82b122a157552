"""`/v1/connections/{conn_id}/traffic`: a connection's hourly traffic against its usual.

Reading needs `viewer`. `?span=day` (the last 24 hours, the default) or
`week` (168); each hour with the recipients accepted and, once the detector
learned it, the usual number for that hour and its spread, and the band
drawn on the console's chart (usual ± 2 spreads). `status` is "off" when
the detector is off in this node (no hours), "unknown" before its first
message from that connection. One call of `TrafficService`; an unknown
connection is 404, another span 422 (problem+json, `admin.errors`).
"""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from admin.auth import Authority
from admin.errors import problems
from admin.times import Time
from ugem.core.services.tokens import Role
from ugem.core.services.traffic import HourCount, Status, Traffic, TrafficService


class HourOut(BaseModel):
    start: Time = Field(description="when the hour began")
    count: int = Field(description="recipients accepted in it (so far, for the last one)")
    usual: float | None = Field(description="what is usual for it; null: not learned yet")
    spread: float | None = Field(description="the usual's spread (a standard deviation)")
    low: float = Field(description="the usual band's low edge (0 when not learned)")
    high: float = Field(description="the usual band's high edge (0 when not learned)")

    @classmethod
    def of(cls, hour: HourCount) -> "HourOut":
        low, high = hour.band
        return cls(
            start=hour.start, count=hour.count, usual=hour.usual, spread=hour.spread,
            low=low, high=high,
        )  # fmt: skip


class TrafficOut(BaseModel):
    connection: str
    span: Literal["day", "week"]
    status: Status = Field(
        description="off: the detector is off in this node; unknown: it has not seen the "
        "connection yet; known: the hours are given"
    )
    total: int = Field(description="recipients in the span")
    hours: list[HourOut] = Field(description="oldest first; the last is the hour in progress")

    @classmethod
    def of(cls, traffic: Traffic) -> "TrafficOut":
        return cls(
            connection=traffic.connection,
            span=traffic.span,  # type: ignore[arg-type]  # checked by the service
            status=traffic.status,
            total=traffic.total,
            hours=[HourOut.of(h) for h in traffic.hours],
        )


def router(service: TrafficService, auth: Authority) -> APIRouter:
    r = APIRouter(prefix="/connections", tags=["connections"])

    @r.get(
        "/{conn_id}/traffic",
        response_model=TrafficOut,
        dependencies=[Depends(auth.require(Role.VIEWER))],
        summary="Show a connection's traffic against its usual",
        responses=problems(404),
    )
    async def connection_traffic(
        conn_id: str,
        span: Annotated[
            Literal["day", "week"], Query(description="the last 24 hours or the last 7 days")
        ] = "day",
    ) -> TrafficOut:
        """Recipients per hour of the span, with the usual number the detector learned."""
        return TrafficOut.of(await service.traffic(conn_id, span))

    return r
