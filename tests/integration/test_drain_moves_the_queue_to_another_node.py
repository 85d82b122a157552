"""Scenario: `ugem drain --to B` hands node A's whole queue to node B, and B delivers it.

Two real nodes on loopback, each with its own data dir, store and ports; the
next hop (the sink) defers every recipient, so mail stays queued on A (two
messages held by an operator). A drain with a token B refuses moves nothing,
says why, and already takes A out of service: new SMTP sessions get 421
4.3.2, `/readyz` 503 "draining". With B's admin token every message moves,
with its envelope, its schedule (attempts, next attempt, first queued time),
its hold and its last error, and A is empty (exit 0). Then the sink accepts:
B delivers every message, each exactly once (the held ones once released).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from relay import replies
from tests.integration.test_full_disk_never_duplicates import subjects
from tests.support.drain import (
    admin_token,
    greeting,
    queue_items,
    readyz,
    token_file,
    ugem_drain,
)
from tests.support.node import NodeProcess, node_relaying_to, send_mail
from tests.support.sink import Sink
from tests.support.waiting import eventually_read
from ugem.core.config import Config
from ugem.core.services.mailqueue import MailItem
from ugem.core.services.tokens import Role

N = 20
DEFER = "451 4.2.0 Mailbox busy, try later"
KEPT = ("sender", "rcpts", "original_rcpts", "size", "connection", "client_ip", "received_at",
        "state", "attempts", "next_attempt", "last_error", "hold_reason")  # fmt: skip

LATER = {"min_backoff": 3600.0, "max_backoff": 7200.0}  # no retry while the test looks
pytestmark = pytest.mark.slow


def as_kept(items: list[MailItem]) -> dict[str, tuple[object, ...]]:
    return {m.id: tuple(getattr(m, k) for k in KEPT) for m in items}


async def hold(node: NodeProcess, ids: list[str]) -> None:
    secret = await admin_token(node.config, Role.OPERATOR, "noc")
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(base_url=f"http://{node.config.admin.listen}") as api:
        for queue_id in ids:
            held = await api.post(f"/v1/queue/{queue_id}/hold", json={"reason": "looks odd"},
                                  headers=headers)  # fmt: skip
            assert held.json() == {"count": 1}, held.text


async def due_now(config: Config, queue: dict[str, tuple[object, ...]]) -> None:
    """Every message due now on the node: held ones released, deferred ones retried."""
    headers = {"Authorization": f"Bearer {await admin_token(config, Role.OPERATOR, 'noc-b')}"}
    async with httpx.AsyncClient(base_url=f"http://{config.admin.listen}", headers=headers) as api:
        for queue_id, kept in queue.items():
            verb = "release" if kept[KEPT.index("hold_reason")] else "retry"
            done = await api.post(f"/v1/queue/{queue_id}/{verb}", json={})
            assert done.json() == {"count": 1}, done.text


async def test_a_drain_moves_every_message_as_it_was_and_b_delivers_each_once(
    tmp_path: Path, sink: Sink
) -> None:
    sink.rcpt_reply = lambda rcpt: DEFER
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a_config, a_path = await node_relaying_to(tmp_path / "a", sink, delivery=LATER)
    b_config, b_path = await node_relaying_to(tmp_path / "b", sink, delivery=LATER)
    a, b = NodeProcess(a_path, a_config), NodeProcess(b_path, b_config)
    a.start()
    b.start()
    try:
        await asyncio.gather(a.wait_ready(), b.wait_ready())
        for n in range(N):
            sent = await send_mail(
                a_config, "a@mdai.gov.kz", ["x@example.org"], "127.0.0.2", f"m{n}"
            )
            assert sent.code == 250, sent
        tried = await eventually_read(
            lambda: queue_items(a_config),
            lambda items: len(items) == N and all(m.attempts >= 1 for m in items),
            what="every message deferred once on A",
        )
        await hold(a, [tried[0].id, tried[5].id])

        wrong = token_file(tmp_path, "ugem_not_a_token_of_b", "wrong.token")
        code, out, _ = await ugem_drain(a_path, "--to", b_config.admin.listen,
                                        "--token-file", str(wrong))  # fmt: skip
        assert code == 1 and "answered 401" in out, out
        assert await greeting(a_config) == (421, str(replies.DRAINING)[4:])
        status, body = await readyz(a_config) or (0, {})
        assert status == 503 and body["reason"].startswith(f"draining into {b_config.admin.listen}")
        before = as_kept(await queue_items(a_config))  # A is paused: its queue stands still
        assert len(before) == N
        assert sum(1 for k in before.values() if k[KEPT.index("hold_reason")]) == 2

        good = token_file(tmp_path, await admin_token(b_config))
        code, out, err = await ugem_drain(a_path, "--to", b_config.admin.listen,
                                          "--token-file", str(good), "--json")  # fmt: skip
        assert code == 0, out + err
        report = json.loads(out)
        assert (report["state"], report["moved"], report["already"], report["left"]) == (
            "done", N, 0, 0,
        )  # fmt: skip
        assert await queue_items(a_config) == []
        assert as_kept(await queue_items(b_config)) == before
        assert (await greeting(a_config))[0] == 421  # A stays out of service

        sink.rcpt_reply = None
        await due_now(b_config, before)
        await sink.wait_until(lambda: len(subjects(sink)) == N, 30, "every message delivered")
        await eventually_read(lambda: queue_items(b_config), lambda items: not items,
                              what="B's queue empty")  # fmt: skip
        assert subjects(sink) == {f"m{n}": 1 for n in range(N)}  # each exactly once
    finally:
        a.kill()
        b.kill()
