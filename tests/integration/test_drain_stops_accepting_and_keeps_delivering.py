"""Scenario: `ugem drain` alone takes a node out of service but lets its queue go out.

A node holds mail its next hop deferred. `ugem drain` (a process of its own,
as an operator runs it) stops the node accepting: a new SMTP session gets
421 4.3.2, `/readyz` 503 "not accepting mail"; the scheduler goes on, so once
the next hop takes mail the queue empties and the command, which printed the
count left meanwhile, exits 0 saying so. The node stays out of service until
`ugem drain --cancel` (then 220 again). A drain into another node while it
stops accepting is refused: the API's stop-accepting answers 409 during one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from relay import replies
from tests.support.drain import greeting, queue_items, readyz, ugem_drain
from tests.support.node import node_relaying_to, running_node, send_mail
from tests.support.sink import Sink
from tests.support.waiting import eventually_read

pytestmark = pytest.mark.slow

N = 5


async def test_a_node_stops_accepting_delivers_its_queue_and_says_when_it_is_empty(
    tmp_path: Path, sink: Sink
) -> None:
    deferring = True
    sink.rcpt_reply = lambda rcpt: "451 4.3.0 later" if deferring else None
    config, path = await node_relaying_to(
        tmp_path, sink, delivery={"min_backoff": 1.0, "max_backoff": 1.0}
    )
    async with running_node(config):
        sent = [
            await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], "127.0.0.2", f"m{n}")
            for n in range(N)
        ]
        assert all(s.ok for s in sent)
        await eventually_read(lambda: queue_items(config), lambda items: len(items) == N)

        drain = asyncio.create_task(ugem_drain(path, "--timeout", "60", "--every", "0.2"))
        answer = await eventually_read(
            lambda: readyz(config), lambda a: a is not None and a[0] == 503, 15, "out of service"
        )
        assert answer is not None and answer[1]["reason"].startswith("not accepting mail since")
        code, _ = await greeting(config)
        assert code == replies.DRAINING.code
        deferring = False  # the next hop takes mail again: the queue goes out
        code, out, err = await drain
        assert code == 0, out + err
        assert out.strip() == "not accepting mail; 0 messages left: the queue is empty"
        assert "messages left" in err  # the count while it waited
        assert len(sink.messages) == N
        assert (await greeting(config))[0] == replies.DRAINING.code  # still out of service

        code, out, _ = await ugem_drain(path, "--cancel", "--reason", "maintenance over")
        assert code == 0 and out.startswith("not draining"), out
        await eventually_read(lambda: greeting(config), lambda g: g[0] == 220, 15, "back")
