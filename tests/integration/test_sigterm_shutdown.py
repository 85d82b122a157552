"""Scenario: SIGTERM to a running node.

The node stops accepting, tells an idle client `421` instead of leaving it
hanging, keeps what it acknowledged (it is delivered after the next start)
and exits 0. The deferred message is still queued after the next start and
leaves when an operator asks for a retry.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from relay import replies
from tests.support.node import NodeProcess, node_relaying_to, send_mail, smtp_address
from tests.support.sink import Sink


async def test_sigterm_sends_421_keeps_queue_and_exits_zero(tmp_path: Path) -> None:
    sink = await Sink.start("127.0.0.1", 0)
    sink.data_replies = ["451 4.3.0 not yet"] * 1000  # nothing leaves before the restart
    config, path = await node_relaying_to(
        tmp_path, sink, delivery={"min_backoff": 3600.0, "max_backoff": 3600.0}
    )
    node = NodeProcess(path, config)
    node.start()
    try:
        await node.wait_ready()
        host, port = smtp_address(config)
        sent = await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], "127.0.0.2")
        assert sent.ok
        reader, writer = await asyncio.open_connection(host, port, local_addr=("127.0.0.3", 0))
        banner = await reader.readline()
        assert banner.startswith(b"220 ")
        node.signal(signal.SIGTERM)
        goodbye = await asyncio.wait_for(reader.readline(), 15)
        assert goodbye.startswith(f"{replies.SHUTTING_DOWN.code} ".encode()), goodbye
        writer.close()
        assert await node.wait() == 0, node.output()
        assert "Traceback" not in node.output()

        sink.data_replies = []
        node.start()
        await node.wait_ready()
        retry = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ugem.cli", "queue", "retry", "--all", "--config", str(path)
        )
        assert await retry.wait() == 0  # deferred for an hour: the operator asks for it now
        await sink.wait_for(1, timeout=30)
    finally:
        node.kill()
        await sink.stop()
