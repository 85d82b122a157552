"""Scenario: `ugem serve --workers 2`, two node processes on one SMTP port.

The supervisor binds the port once and both workers accept on that socket;
only worker 0 listens on the admin port and answers /readyz and /metrics for
both (the other worker's admin app is on a private loopback port);
each keeps its own spool, and everything acknowledged arrives once. Another
node started on the same SMTP port (its own data, two workers too) cannot
bind it: one line naming `smtp.listen` and "in use", exit 1 (it would take
part of the mail unseen with SO_REUSEPORT). `ugem queue list` sees
the queue of both, and so does the admin API of each worker (`GET
/v1/queue`), which holds and releases mail kept in the other worker's spool:
released, that worker delivers it. A worker killed with SIGKILL is started
again by the supervisor; SIGTERM to the supervisor stops both and it exits 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from relay.queue.spool import Spool, spool_path
from tests.support.node import NodeProcess, node_config, node_relaying_to, send_mail
from tests.support.sink import Sink
from tests.support.waiting import eventually, eventually_read
from tests.support.workers import running_workers, worker_pid, workers_ready
from ugem.core.clock import SystemClock
from ugem.core.config import Config, parse_hostport
from ugem.core.metrics import Metrics
from ugem.core.services.audit import AuditLog
from ugem.core.services.tokens import Role, TokenService
from ugem.core.store import open_store


async def operator_token(config: Config, name: str = "noc") -> str:
    """A new operator token's secret, made in the store the workers share."""
    store, clock = open_store(config.store_url), SystemClock()
    try:
        tokens = TokenService(store, AuditLog(store, clock), clock)
        _, secret = await tokens.create(name, Role.OPERATOR, "test")
        return secret
    finally:
        await store.close()


async def spooled_ids(config: Config, worker: int) -> list[str]:
    """The queue ids in worker `worker`'s spool file, read as a second process."""
    spool = Spool(spool_path(config, worker), SystemClock(), Metrics())
    await spool.open(recover=False)
    try:
        return [m.id for m in await spool.list()]
    finally:
        await spool.close()


async def the_api_of_each_worker_manages_the_mail_of_both(
    config: Config, admins: list[str], sink: Sink, queued: list[str]
) -> None:
    """Each worker's API lists all `queued`; one holds and releases the other's mail."""
    headers = {"Authorization": f"Bearer {await operator_token(config)}"}
    apis = [httpx.AsyncClient(base_url=f"http://{a}", headers=headers) for a in admins]
    try:
        for api in apis:
            listed = await api.get("/v1/queue")
            assert listed.status_code == 200, listed.text
            assert [m["id"] for m in listed.json()["items"]] == queued
        theirs = await spooled_ids(config, 1)
        # mail in worker 1's spool, managed through worker 0's API (or the other way round)
        queue_id, api = (theirs[0], apis[0]) if theirs else (queued[0], apis[1])
        held = await api.post(f"/v1/queue/{queue_id}/hold", json={"reason": "case 5"})
        assert held.json() == {"count": 1}, held.text
        for each in apis:
            shown = (await each.get(f"/v1/queue/{queue_id}")).json()
            assert (shown["state"], shown["hold_reason"]) == ("held", "case 5")
        released = await api.post(f"/v1/queue/{queue_id}/release", json={})
        assert released.json() == {"count": 1}, released.text
        await sink.wait_for(56, timeout=30)  # its own worker delivers it at once

        async def left() -> list[str]:  # removed once the relay has heard the sink's 250
            return sorted(m["id"] for m in (await api.get("/v1/queue")).json()["items"])

        await eventually_read(left, lambda ids: ids == sorted(set(queued) - {queue_id}))
    finally:
        for api in apis:
            await api.aclose()


async def cli_queue(path: Path) -> list[str]:
    """The queue ids `ugem queue list --json` shows (every worker's spool)."""
    listed = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ugem.cli",
        "queue",
        "list",
        "--json",
        "--config",
        str(path),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await listed.communicate()
    return [m["id"] for m in json.loads(out)]


async def the_node_answers_for_both_workers(config: Config) -> None:
    """One admin listener: its /readyz lists both workers, its /metrics has both workers'
    samples; nothing listens on the admin port + 1 any more."""
    async with httpx.AsyncClient(base_url=f"http://{config.admin.listen}") as http:
        ready = (await http.get("/readyz")).json()
        page = (await http.get("/metrics")).text
    assert [(w["worker"], w["status"]) for w in ready["workers"]] == [(0, "ready"), (1, "ready")]
    families = {f.name: f for f in text_string_to_metric_families(page)}
    up = families["ugem_admin_peer_up"].samples
    assert [(s.labels["worker"], s.value) for s in up] == [("1", 1.0)]
    workers = {s.labels.get("worker") for s in families["ugem_build_info"].samples}
    assert workers == {"0", "1"}
    host, port = parse_hostport(config.admin.listen)
    with pytest.raises(OSError):
        socket.create_connection((host, port + 1), timeout=1).close()


async def another_node_cannot_take_the_port(tmp_path: Path, config: Config) -> None:
    (tmp_path / "other").mkdir()
    _, other = node_config(tmp_path / "other", smtp={"listen": config.smtp.listen})
    command = [sys.executable, "-m", "ugem.cli", "serve", "--workers", "2", "--config", str(other)]
    ran = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == 1, ran.stderr
    last = ran.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ugem: failed: smtp.listen {config.smtp.listen}: cannot listen")
    assert "in use" in last and "Traceback" not in ran.stderr


async def test_two_workers_share_the_port_and_survive_a_kill(tmp_path: Path) -> None:
    sink = await Sink.start("127.0.0.1", 0)
    sink.data_replies = ["451 4.3.0 later"] * 5  # a few stay queued, to list them
    config, path = await node_relaying_to(
        tmp_path, sink, node={"workers": 2}, delivery={"min_backoff": 3600.0, "max_backoff": 3600.0}
    )
    node = NodeProcess(path, config)
    node.start()
    try:
        admins = await workers_ready(node, config)
        assert admins[0] == config.admin.listen  # worker 0's is the node's one admin listener
        await the_node_answers_for_both_workers(config)
        await another_node_cannot_take_the_port(tmp_path, config)
        await status_shows_both_workers(path, config)
        await the_api_shows_the_same_status(config, admins[0])

        async def send(n: int) -> bool:
            sent = await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], "127.0.0.2", f"m{n}")
            return sent.ok

        assert all(await asyncio.gather(*(send(n) for n in range(60))))
        await eventually(lambda: len(sink.messages) == 55, what="55 delivered, 5 deferred")
        spools = sorted(p.name for p in (tmp_path / "var" / "spool").glob("queue*.db"))
        assert spools == ["queue-w1.db", "queue.db"]
        # the 5 deferred, once the 55 the sink took are removed from the spools
        queued = await eventually_read(lambda: cli_queue(path), lambda ids: len(ids) == 5)
        await the_api_of_each_worker_manages_the_mail_of_both(config, admins, sink, queued)

        victim = worker_pid(admins[1])
        assert victim is not None
        os.kill(victim, signal.SIGKILL)

        def restarted() -> bool:
            again = [w for w in running_workers(config) if w.worker == 1]
            return bool(again) and again[0].pid != victim and worker_pid(again[0].admin) is not None

        await eventually(restarted, timeout=30, what="worker 1 started again")
        node.signal(signal.SIGTERM)
        assert await node.wait() == 0, node.output()
        code, shown = await ugem_status(path)
        assert code == 1 and shown["workers"] == []  # a clean stop removed their files
    finally:
        node.kill()
        await sink.stop()


async def ugem_status(path: Path) -> tuple[int, dict[str, Any]]:
    command = [sys.executable, "-m", "ugem.cli", "status", "--json", "--config", str(path)]
    ran = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60, check=False
    )
    return ran.returncode, json.loads(ran.stdout)


async def status_shows_both_workers(path: Path, config: Config) -> None:
    """`ugem status`: both workers running and ready, on the node's one SMTP port."""
    code, shown = await ugem_status(path)
    assert code == 0, shown
    workers = [(w["worker"], w["running"], w["status"], w["smtp"]) for w in shown["workers"]]
    assert workers == [(i, True, "ready", config.smtp.listen) for i in range(2)]
    assert shown["queue"] == {"active": 0, "deferred": 0, "held": 0}
    assert shown["connections"] == {"connected": 1} and shown["open_incidents"] == 0


async def the_api_shows_the_same_status(config: Config, admin: str) -> None:
    headers = {"Authorization": f"Bearer {await operator_token(config, 'status')}"}
    async with httpx.AsyncClient(base_url=f"http://{admin}", headers=headers) as api:
        shown = (await api.get("/v1/status")).json()
    assert [(w["worker"], w["running"], w["status"]) for w in shown["workers"]] == [
        (0, True, "ready"),
        (1, True, "ready"),
    ]
    assert shown["workers"][0]["started_at"].endswith("+05:00")
    assert shown["queue"] == {"active": 0, "deferred": 0, "held": 0}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    """A supervisor killed outright (SIGKILL, the OOM killer) leaves no worker behind
    holding the ports and taking mail (ugem.parent_death)."""
    sink = await Sink.start("127.0.0.1", 0)
    config, path = await node_relaying_to(tmp_path, sink, node={"workers": 2})
    node = NodeProcess(path, config)
    node.start()
    try:
        admins = await workers_ready(node, config)
        pids = [worker_pid(a) for a in admins]
        node.signal(signal.SIGKILL)
        await eventually(
            lambda: not any(alive(p) for p in pids if p is not None),
            timeout=30,
            what="both workers gone with their supervisor",
        )
    finally:
        node.kill()
        await sink.stop()
