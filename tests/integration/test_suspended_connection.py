"""Scenario: an operator suspends a connected server, then resumes it.

While suspended, the server's new mail gets `451 4.7.1` (it keeps it and
retries) and its mail already in the queue is held: not delivered, not
dropped. Inbound mail to the suspended organisation still gets through.
Resuming releases the held mail, which is then delivered. The change is made
through the store by another process's means (the CLI), and takes effect
without a restart.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from relay import replies
from relay.queue.message import QueueState
from tests.support.node import node_relaying_to, running_node, send_mail
from tests.support.sink import Sink
from tests.support.waiting import eventually


async def ugem(config_path: Path, *argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ugem.cli",
        "--config",
        str(config_path),
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return await proc.wait(), out.decode()


async def test_suspend_gives_451_holds_queue_and_resume_releases(tmp_path: Path) -> None:
    external = await Sink.start("127.0.0.1", 0)
    org = await Sink.start("127.0.0.5", 0)
    external.data_replies = ["451 4.3.0 not now"]  # keep the first message in the queue
    config, path = await node_relaying_to(
        tmp_path,
        external,
        servers=["127.0.0.2", "127.0.0.5"],
        delivery={"smtp_port": org.port, "min_backoff": 3600.0, "max_backoff": 3600.0},
    )
    try:
        async with running_node(config) as node:
            assert node.spool is not None
            first = await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], "127.0.0.2")
            assert first.ok
            queue_id = first.text.rsplit(" ", 1)[-1]
            spool = node.spool

            async def state() -> QueueState | None:
                msg = await spool.get(queue_id, with_data=False)
                return None if msg is None else msg.state

            await eventually(lambda: not external.data_replies, what="first attempt deferred")
            code, out = await ugem(
                path,
                "connection",
                "suspend",
                "mdai.gov.kz",
                "--reason",
                "spam from a compromised mailbox",
            )
            assert code == 0, out

            refused = await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], "127.0.0.2")
            assert (refused.code, refused.text.split(" ", 1)[0]) == (
                replies.SUSPENDED.code,
                replies.SUSPENDED.status,
            )
            for _ in range(100):
                if await state() == QueueState.HELD:
                    break
                await asyncio.sleep(0.05)
            assert await state() == QueueState.HELD

            inbound = await send_mail(config, "x@example.org", ["info@mdai.gov.kz"], "127.0.0.9")
            assert inbound.ok
            await org.wait_for(1)
            assert external.messages == []

            code, out = await ugem(path, "connection", "resume", "mdai.gov.kz")
            assert code == 0, out
            await external.wait_for(1, timeout=30)
            assert external.messages[0].sender == "a@mdai.gov.kz"
    finally:
        await external.stop()
        await org.stop()
