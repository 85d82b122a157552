"""`/v1/status`: one screen of the node, as `ugem status` prints it.

Needs `viewer`. One call of `ugem.core.services.status.StatusService`: the
node's workers as each describes itself (pid, uptime, listeners, readiness,
recent warnings and errors), the queue of every worker by state, the
connections by state and the open incidents. A part that cannot be read is
null and named in `problems`; the answer is still 200.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from admin.auth import Authority
from ugem.core import times
from ugem.core.runtime import RecentEvent, WorkerState
from ugem.core.services.status import NodeStatus, StatusService
from ugem.core.services.tokens import Role


class EventOut(BaseModel):
    at: str = Field(description=times.WRITTEN)
    worker: int
    level: str
    event: str
    detail: str = Field(description="the event's fields as JSON, cut to 300 characters")

    @classmethod
    def of(cls, ev: RecentEvent) -> EventOut:
        return cls(
            at=times.rfc3339(ev.ts), worker=ev.worker, level=ev.level, event=ev.event,
            detail=ev.detail,
        )  # fmt: skip


class WorkerOut(BaseModel):
    worker: int
    pid: int
    running: bool = Field(description="its process is alive and its status file fresh")
    version: str
    started_at: str = Field(description=times.WRITTEN)
    uptime_s: int
    smtp: str = Field(description="host:port as bound")
    admin: str = Field(description='host:port as bound; "" when it serves none')
    status: str = Field(description="ready, degraded or not ready, as /readyz says")
    reason: str

    @classmethod
    def of(cls, w: WorkerState, now: float) -> WorkerOut:
        return cls(
            worker=w.worker, pid=w.pid, running=w.running, version=w.version,
            started_at=times.rfc3339(w.started_at), uptime_s=max(0, round(now - w.started_at)),
            smtp=w.smtp, admin=w.admin, status=w.status, reason=w.reason,
        )  # fmt: skip


class StatusOut(BaseModel):
    version: str
    now: str = Field(description=times.WRITTEN)
    workers: list[WorkerOut]
    queue: dict[str, int] | None = Field(description="messages by state; null: unreadable")
    connections: dict[str, int] | None = Field(description="by state; null: store unreadable")
    open_incidents: int | None
    recent: list[EventOut] = Field(description="the last warnings and errors, newest first")
    problems: list[str]

    @classmethod
    def of(cls, s: NodeStatus) -> StatusOut:
        return cls(
            version=s.version, now=times.rfc3339(s.now),
            workers=[WorkerOut.of(w, s.now) for w in s.workers], queue=s.queue,
            connections=s.connections, open_incidents=s.open_incidents,
            recent=[EventOut.of(e) for e in s.recent], problems=s.problems,
        )  # fmt: skip


def router(service: StatusService, auth: Authority) -> APIRouter:
    r = APIRouter(prefix="/status", tags=["status"])

    @r.get(
        "",
        response_model=StatusOut,
        dependencies=[Depends(auth.require(Role.VIEWER))],
        summary="One screen of the node",
    )
    async def node_status() -> StatusOut:
        """Version, workers (pid, uptime, listeners, readiness), the queue by state, the
        connections by state, open incidents and the last warnings and errors."""
        return StatusOut.of(await service.status())

    return r
