"""Liveness, readiness and metrics endpoints, beside the /v1/ API.

`/healthz` answers 200 while the process serves HTTP at all (liveness).
`/readyz` answers 200 when the node should get traffic, else 503 with the
reason (spool unhealthy, node starting or shutting down, its registry copy
older than `[store] max_stale` while the store is down), in the manner of
KumoMTA's liveness check, and says which process answered (`pid`). `status`
is "ready", "degraded" (200 still: the store is unreachable or refused and
the node relays on its registry copy; `store` says which, `registry_copy_age`
how old the copy is, `reason` why) or "not ready" (503). `/metrics` is the
Prometheus text exposition of the node's registry. With `--workers N` only
worker 0 listens on `[admin] listen` and answers both for the whole node,
asking the others on their private loopback listeners (`admin.node_wide`:
`workers` in /readyz, a `worker` label on every sample). The OpenAPI schema
documents each answer as it is (text or JSON, 200 or 503). None of them
needs a token; none of them raises.
"""

from __future__ import annotations

import os
from typing import Protocol

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from admin.node_wide import node_metrics, node_readiness
from ugem.core.metrics import Metrics
from ugem.core.registry_watch import StoreStatus


class WorkerReadiness(BaseModel):
    worker: int
    ready: bool
    status: str = Field(description="ready, degraded, not ready, or no answer")
    reason: str
    pid: int | None


class Readiness(BaseModel):
    ready: bool
    reason: str
    pid: int = Field(description="the process that answered (worker 0 of several)")
    status: str = Field("ready", description="ready, degraded (still 200) or not ready")
    store: str | None = Field(None, description="the registry's store: up, unreachable, refused")
    registry_copy_age: float | None = Field(
        None, description="seconds since the store last confirmed the registry relayed on"
    )
    workers: list[WorkerReadiness] | None = Field(
        None, description="with several workers: each one's answer (worker 0 asks them)"
    )


class HealthSource(Protocol):
    def readiness(self) -> tuple[bool, str]:
        """(ready, reason): the reason says what is wrong when not ready."""
        ...

    def store_status(self) -> StoreStatus | None:
        """The registry's store and copy as the node sees them; None: no registry yet."""
        ...

    def peers(self) -> list[tuple[int, str]]:
        """The node's other running workers as (index, private admin host:port), for the
        node-wide answers of worker 0 (`admin.node_wide`); empty for any other worker."""
        ...


def readiness_body(source: HealthSource) -> dict[str, object]:
    ready, reason = source.readiness()
    store = source.store_status()
    degraded = ready and store is not None and store.degraded
    return {
        "ready": ready,
        "reason": reason,
        "pid": os.getpid(),
        "status": "not ready" if not ready else "degraded" if degraded else "ready",
        "store": None if store is None else store.state,
        "registry_copy_age": None if store is None else _rounded(store.copy_age),
    }


def _rounded(age: float | None) -> float | None:
    return None if age is None else round(age, 1)


def health_router(source: HealthSource, metrics: Metrics) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", response_class=PlainTextResponse, summary="Liveness")
    async def healthz() -> str:
        """`ok` while the process serves HTTP at all."""
        return "ok\n"

    @router.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "not ready; the reason says why"}},
        summary="Readiness",
    )
    async def readyz() -> JSONResponse:
        """200 when the node should get traffic (also degraded: relaying on its registry
        copy while the store is down), else 503 with the reason; the worker that answered."""
        body = readiness_body(source)
        if peers := source.peers():
            body = await node_readiness(body, peers)
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def metrics_endpoint() -> Response:
        """The node's metrics, in the Prometheus text exposition format; with several
        workers every worker's, each sample labelled with its `worker`."""
        page = metrics.render()
        if peers := source.peers():
            page = await node_metrics(page, peers)
        return Response(page, media_type=CONTENT_TYPE_LATEST)

    return router
