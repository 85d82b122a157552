"""Scenario: with `ugem serve --workers 2`, a message's history is found whichever worker took it.

Both workers write the node's one message index (`<data_dir>/maillog.db`, WAL,
in batches). The next hop defers everything, so each message stays in the
spool of the worker that took it. `ugem log search` (a child process) finds
every message, with its deferral, and the admin API of worker 1 shows the
history of a message that worker 0 took.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.integration.test_workers_share_the_port import (
    operator_token,
    spooled_ids,
)
from tests.support.node import NodeProcess, node_relaying_to, send_mail
from tests.support.sink import Sink
from tests.support.waiting import eventually_read
from tests.support.workers import workers_ready

N = 30


async def search(path: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UGEM_")}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ugem.cli", "log", "search", "--to", "@example.org", "--json",
        "--config", str(path), stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, _ = await child.communicate()
    assert child.returncode == 0
    page: dict[str, Any] = json.loads(out)
    return page


def deferred(page: dict[str, Any]) -> dict[str, list[str]]:
    """Queue id -> its events, for the messages whose history has reached a deferral."""
    found = {m["queue_id"]: [e["event"] for e in m["events"]] for m in page["items"]}
    return {qid: names for qid, names in found.items() if "deferred" in names}


async def test_every_workers_messages_are_in_the_one_index(tmp_path: Path) -> None:
    sink = await Sink.start("127.0.0.1", 0)
    sink.rcpt_reply = lambda rcpt: "451 4.2.0 Later"
    config, path = await node_relaying_to(
        tmp_path, sink, node={"workers": 2}, delivery={"min_backoff": 3600.0, "max_backoff": 3600.0}
    )
    node = NodeProcess(path, config)
    node.start()
    try:
        admins = await workers_ready(node, config)

        async def send(n: int) -> bool:
            sent = await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], "127.0.0.2", f"m{n}")
            return sent.ok

        assert all(await asyncio.gather(*(send(n) for n in range(N))))
        page = await eventually_read(lambda: search(path), lambda p: len(deferred(p)) == N, 15)
        took = [await spooled_ids(config, worker) for worker in (0, 1)]
        assert all(took), f"one worker took every message: {took}"  # as the kernel spreads them
        assert sorted(deferred(page)) == sorted(took[0] + took[1])
        assert all(names == ["accepted", "deferred"] for names in deferred(page).values())

        headers = {"Authorization": f"Bearer {await operator_token(config)}"}
        async with httpx.AsyncClient(base_url=f"http://{admins[1]}", headers=headers) as api:
            answer = await api.get("/v1/messages", params={"queue_id": took[0][0]})
        assert answer.status_code == 200, answer.text
        [message] = answer.json()["items"]
        assert message["status"] == "queued" and message["events"][1]["text"].endswith("Later")
    finally:
        node.kill()
        await sink.stop()
