"""The node-wide /readyz and /metrics of `ugem serve --workers N`, answered by worker 0.

Only worker 0 listens on `[admin] listen`; every other worker serves its own
admin app on a private loopback port (written in its status file,
`ugem.core.runtime`), and worker 0 asks them (`peers`: (worker, host:port),
all at once, `PEER_TIMEOUT` each). `/metrics` is every worker's page merged,
each sample labelled with its worker (`ugem.core.metrics_merge`); a worker
that does not answer is left out and named in `ugem_admin_peer_up{worker}`
= 0. `/readyz` is ready when worker 0 is and every worker that answers is
(a worker that does not answer takes no mail: the kernel hands the shared
SMTP socket's connections to the workers that accept), degraded when any
is, and lists each worker's answer under `workers`. Never raises: an
unreachable or garbled peer is an answer of its own.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import httpx

from ugem.core.metrics_merge import merge

PEER_TIMEOUT: Final = 1.0  # seconds a worker gets to answer worker 0

Peers = list[tuple[int, str]]


async def _get(client: httpx.AsyncClient, address: str, path: str) -> httpx.Response | None:
    try:
        return await client.get(f"http://{address}{path}", timeout=PEER_TIMEOUT)
    except httpx.HTTPError:
        return None


async def _ask(peers: Peers, path: str) -> list[tuple[int, httpx.Response | None]]:
    async with httpx.AsyncClient() as client:
        answers = await asyncio.gather(*(_get(client, address, path) for _, address in peers))
    return [(worker, answer) for (worker, _), answer in zip(peers, answers, strict=True)]


async def node_metrics(own: bytes, peers: Peers) -> bytes:
    """Worker 0's page and every peer's, merged, with each peer's reachability."""
    pages = [(0, own.decode("utf-8", "replace"))]
    up = ["# HELP ugem_admin_peer_up Whether worker 0 could read the worker's metrics.",
          "# TYPE ugem_admin_peer_up gauge"]  # fmt: skip
    for worker, answer in await _ask(peers, "/metrics"):
        ok = answer is not None and answer.status_code == 200
        up.append(f'ugem_admin_peer_up{{worker="{worker}"}} {1.0 if ok else 0.0}')
        if ok and answer is not None:
            pages.append((worker, answer.text))
    return (merge(pages) + "\n".join(up) + "\n").encode()


async def node_readiness(own: dict[str, Any], peers: Peers) -> dict[str, Any]:
    """Worker 0's readiness body, made node-wide; see the module docstring."""
    workers = [{"worker": 0, **_brief(own)}]
    for worker, answer in await _ask(peers, "/readyz"):
        workers.append({"worker": worker, **_answer(answer)})
    answering = [w for w in workers if w["status"] != "no answer"]
    body = dict(own)
    body["workers"] = workers
    not_ready = [w for w in answering if not w["ready"]]
    if not_ready:
        body["ready"] = False
        body["status"] = "not ready"
        others = [w for w in not_ready if w["reason"] != own["reason"] or own["ready"]]
        told = [] if own["ready"] else [str(own["reason"])]  # worker 0's own words first
        told += [f"worker {w['worker']}: {w['reason']}" for w in others]
        body["reason"] = "; ".join(told)
    elif any(w["status"] == "degraded" for w in answering) and body["status"] == "ready":
        body["status"] = "degraded"
    return body


def _brief(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body.get(k) for k in ("ready", "status", "reason", "pid")}


def _answer(answer: httpx.Response | None) -> dict[str, Any]:
    if answer is None:
        return {"ready": False, "status": "no answer", "reason": "no answer", "pid": None}
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return {"ready": False, "status": "no answer", "reason": "garbled answer", "pid": None}
    return _brief(body)
