"""Liveness, readiness and metrics endpoints, beside the /v1/ API.

`/healthz` answers 200 while the process serves HTTP at all (liveness).
`/readyz` answers 200 when the node should get traffic, else 503 with the
reason (spool unhealthy, node starting or shutting down, its registry copy
older than `[store] max_stale` while the store is down), in the manner of
KumoMTA's liveness check, and says which process answered (`pid`: with
`--workers N` each worker has its own listener). `status` is "ready",
"degraded" (200 still: the store is unreachable or refused and the node
relays on its registry copy; `store` says which, `registry_copy_age` how old
the copy is, `reason` why) or "not ready" (503). `/metrics` is the
Prometheus text exposition of the node's own registry. The OpenAPI schema
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

from ugem.core.metrics import Metrics
from ugem.core.registry_watch import StoreStatus


class Readiness(BaseModel):
    ready: bool
    reason: str
    pid: int = Field(description="the process that answered (one per worker)")
    status: str = Field("ready", description="ready, degraded (still 200) or not ready")
    store: str | None = Field(None, description="the registry's store: up, unreachable, refused")
    registry_copy_age: float | None = Field(
        None, description="seconds since the store last confirmed the registry relayed on"
    )


class HealthSource(Protocol):
    def readiness(self) -> tuple[bool, str]:
        """(ready, reason): the reason says what is wrong when not ready."""
        ...

    def store_status(self) -> StoreStatus | None:
        """The registry's store and copy as the node sees them; None: no registry yet."""
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
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def metrics_endpoint() -> Response:
        """The node's own metrics, in the Prometheus text exposition format."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router
