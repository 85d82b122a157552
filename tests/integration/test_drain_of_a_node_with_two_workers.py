"""Scenario: `ugem drain` of a node of two workers (`--workers 2`), then `--cancel`.

Each worker keeps its own spool and scheduler; the drain, a process beside
them, reaches both through the node's data dir: both stop taking mail
(`/readyz` 503 on each worker's admin port), both say they are quiet, the
mail of both spools goes to node B, and `--status` shows the two answers.
`ugem drain --cancel` puts both workers back in service: ready again, and
SMTP sessions greeted with 220.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from tests.integration.test_drain_moves_the_queue_to_another_node import DEFER, LATER
from tests.support.drain import admin_token, greeting, queue_items, token_file, ugem_drain
from tests.support.node import NodeProcess, node_relaying_to, send_mail
from tests.support.sink import Sink
from tests.support.waiting import eventually_read
from tests.support.workers import workers_ready

N = 30

pytestmark = pytest.mark.slow


async def readiness(admins: list[str]) -> list[tuple[int, str]]:
    """(status, reason) of each worker's /readyz."""

    async def one(admin: str) -> tuple[int, str]:
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://{admin}/readyz")
            return answer.status_code, str(answer.json()["reason"])

    return list(await asyncio.gather(*(one(a) for a in admins)))


async def test_both_workers_pause_their_mail_moves_and_cancel_brings_them_back(
    tmp_path: Path, sink: Sink
) -> None:
    sink.rcpt_reply = lambda rcpt: DEFER
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a_config, a_path = await node_relaying_to(
        tmp_path / "a", sink, node={"workers": 2}, delivery=LATER
    )
    b_config, b_path = await node_relaying_to(tmp_path / "b", sink, delivery=LATER)
    a, b = NodeProcess(a_path, a_config), NodeProcess(b_path, b_config)
    a.start()
    b.start()
    try:
        admins, _ = await asyncio.gather(workers_ready(a, a_config), b.wait_ready())
        sent = await asyncio.gather(*(
            send_mail(a_config, "a@mdai.gov.kz", ["x@example.org"], "127.0.0.2", f"m{n}")
            for n in range(N)
        ))  # fmt: skip
        assert all(s.ok for s in sent)
        await eventually_read(lambda: queue_items(a_config),
                              lambda items: len(items) == N and all(m.attempts for m in items),
                              what="every message deferred on A")  # fmt: skip
        spools = sorted(p.name for p in (tmp_path / "a" / "var" / "spool").glob("queue*.db"))
        assert spools == ["queue-w1.db", "queue.db"]

        token = token_file(tmp_path, await admin_token(b_config))
        code, out, err = await ugem_drain(a_path, "--to", b_config.admin.listen,
                                          "--token-file", str(token), "--json")  # fmt: skip
        assert code == 0, out + err
        assert json.loads(out)["moved"] == N
        assert await queue_items(a_config) == []
        assert len(await queue_items(b_config)) == N
        for status, reason in await readiness(admins):
            assert status == 503 and reason.startswith("draining into"), reason
        code, out, _ = await ugem_drain(a_path, "--status", "--json")
        workers = json.loads(out)["workers"]
        assert sorted(workers) == ["0", "1"]
        assert all(w["quiet"] and w["request"] == json.loads(out)["request"]["id"]
                   for w in workers.values())  # fmt: skip

        code, out, _ = await ugem_drain(a_path, "--cancel", "--reason", "test over")
        assert code == 0 and out.startswith("not draining"), out
        await eventually_read(lambda: readiness(admins),
                              lambda answers: all(s == 200 for s, _ in answers),
                              what="both workers ready again")  # fmt: skip
        assert (await greeting(a_config))[0] == 220
    finally:
        a.kill()
        b.kill()
