"""Liveness, readiness and metrics endpoints, beside the /v1/ API.

`/healthz` answers 200 while the process serves HTTP at all (liveness).
`/readyz` answers 200 when the node should get traffic, else 503 with the
reason (spool unhealthy, node starting or shutting down), in the manner of
KumoMTA's liveness check, and says which process answered (`pid`: with
`--workers N` each worker has its own listener). `/metrics` is the
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


class Readiness(BaseModel):
    ready: bool
    reason: str
    pid: int = Field(description="the process that answered (one per worker)")


class HealthSource(Protocol):
    def readiness(self) -> tuple[bool, str]:
        """(ready, reason): the reason says what is wrong when not ready."""
        ...


def health_router(source: HealthSource, metrics: Metrics) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", response_class=PlainTextResponse)
    async def healthz() -> str:
        return "ok\n"

    @router.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "not ready; the reason says why"}},
    )
    async def readyz() -> JSONResponse:
        ready, reason = source.readiness()
        body = {"ready": ready, "reason": reason, "pid": os.getpid()}
        return JSONResponse(body, status_code=200 if ready else 503)

    @router.get("/metrics", response_class=PlainTextResponse)
    async def metrics_endpoint() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router
