"""Scenario: a destination stops answering; the postmaster shapes, holds, bounces and flushes.

A running node relays for mdai.gov.kz; `slow.example` is routed to a port
nobody listens on, so its mail defers, while example.org and mdai.gov.kz go
to a sink. The postmaster sees the deferred mail by destination and age
(`ugem queue summary --json` as a subprocess, and `GET /v1/queue/summary`),
counts then holds the mail of one sender there through `POST
/v1/queue/actions` (a dry run first), bounces that held mail from the command
line (`ugem queue bounce --state held --domain ...`), and each sender gets a
DSN, delivered to the sink, saying "deleted by the postmaster: <reason>";
`POST /v1/queue/flush` makes the rest due now. The audit log has one entry per
bulk action, with the filter and the count.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable
from pathlib import Path

import httpx

from loadtest.ports import free_port
from tests.support.node import api_client, node_relaying_to, running_node, send_mail
from tests.support.sink import Sink
from tests.support.waiting import eventually_read
from tests.unit.test_spool import ROOT
from ugem.core.config import Config
from ugem.core.services.tokens import Role

CONN, SERVER, SLOW = "mdai.gov.kz", "127.0.0.2", "slow.example"


async def ugem(config_file: Path, *argv: str) -> str:
    """`ugem --config FILE ARGV...` in another process; its output (it must exit 0)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ugem.cli", "--config", str(config_file), *argv,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert (proc.returncode, err) == (0, b""), (argv, err)
    return out.decode()


async def queued(api: httpx.AsyncClient, **query: str) -> int:
    answer = await api.get("/v1/queue", params=query)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["total"])


async def wait_deferred(api: httpx.AsyncClient, n: int) -> None:
    def deferred() -> Awaitable[int]:
        return queued(api, state="deferred", domain=SLOW)

    await eventually_read(deferred, lambda found: found == n, 30, f"{n} deferred to {SLOW}")


async def send_all(config: Config) -> None:
    for sender in ("a", "a", "b", "b", "b"):
        sent = await send_mail(config, f"{sender}@{CONN}", [f"x@{SLOW}"], SERVER)
        assert sent.ok, sent
    sent = await send_mail(config, f"a@{CONN}", ["y@example.org"], SERVER)
    assert sent.ok, sent


async def test_postmaster_shapes_holds_bounces_and_flushes_a_stuck_destination(
    tmp_path: Path,
) -> None:
    sink = await Sink.start("127.0.0.1", 0)
    at = f"{sink.host}:{sink.port}"
    routes = {"example.org": at, CONN: at, SLOW: f"127.0.0.1:{free_port()}"}  # SLOW: no one
    delivery = {"routes": routes, "min_backoff": 3600.0, "max_backoff": 3600.0}
    config, config_file = await node_relaying_to(tmp_path, sink, CONN, [SERVER], delivery=delivery)
    try:
        async with running_node(config) as node, api_client(node, "noc", Role.OPERATOR) as api:
            await send_all(config)
            await sink.wait_for(1)  # example.org's
            await wait_deferred(api, 5)

            shape = json.loads(await ugem(config_file, "queue", "summary", "--json"))
            assert [(r["key"], r["total"], r["counts"][0]) for r in shape["rows"]] == [(SLOW, 5, 5)]
            by_conn = (await api.get("/v1/queue/summary", params={"by": "connection"})).json()
            assert [(r["key"], r["total"]) for r in by_conn["rows"]] == [(CONN, 5)]

            body = {"action": "hold", "domain": SLOW, "sender": f"b@{CONN}"}
            dry = await api.post("/v1/queue/actions", json=body | {"dry_run": True})
            assert dry.json()["count"] == 3 and await queued(api, state="held") == 0
            held = await api.post("/v1/queue/actions", json=body | {"reason": "peer is down"})
            assert held.json()["count"] == 3, held.text
            assert await queued(api, state="held", domain=SLOW) == 3

            out = await ugem(
                config_file, "queue", "bounce", "--state", "held", "--domain", SLOW,
                "--reason", "no such peer",
            )  # fmt: skip
            assert out == "returned 3 messages\n"
            dsns = [m for m in await sink.wait_for(4, timeout=30) if m.sender == ""]
            assert len(dsns) == 3 and {tuple(m.rcpts) for m in dsns} == {(f"b@{CONN}",)}
            assert all(b"deleted by the postmaster: no such peer" in m.data for m in dsns)
            assert await queued(api, domain=SLOW) == 2

            flushed = await api.post("/v1/queue/flush", json={"reason": "peer may be back"})
            assert flushed.json() == {"count": 2}
            await wait_deferred(api, 2)  # tried again at once, deferred again

            audit = (await api.get("/v1/audit", params={"limit": 50})).json()["items"]
            bulk = [(e["action"], e["target"], e["details"]["count"]) for e in audit
                    if e["action"].startswith(("queue.bulk", "queue.flush"))]  # fmt: skip
            assert bulk == [
                ("queue.flush", "deferred", 2),
                ("queue.bulk-bounce", f"state=held domain={SLOW}", 3),
                ("queue.bulk-hold", f"sender=b@{CONN} domain={SLOW}", 3),
            ]
    finally:
        await sink.stop()
