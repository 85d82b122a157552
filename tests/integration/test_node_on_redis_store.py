"""Scenario: a node whose registry lives in Redis (`[store] url = "redis://..."`).

The state several nodes share: a connection added by one process is seen by
the node, mail relays, and a suspension made through another store object
(another node, the CLI) gives the connection's server 451 on its next MAIL.
Against a real private redis-server.
"""

from __future__ import annotations

from pathlib import Path

from relay import replies
from tests.support.node import node_relaying_to, running_node, send_mail
from tests.support.sink import Sink
from ugem.core.clock import SystemClock
from ugem.core.model import ConnState
from ugem.core.registry import Registry
from ugem.core.store import open_store


async def test_relay_and_suspension_through_a_redis_store(
    tmp_path: Path, sink: Sink, redis_url: str
) -> None:
    config, _ = await node_relaying_to(tmp_path, sink, store={"url": redis_url})
    async with running_node(config):
        sent = await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], "127.0.0.2")
        assert sent.ok
        await sink.wait_for(1)

        other = open_store(redis_url)  # another node's view of the same state
        try:
            await Registry(other, SystemClock()).set_state(
                "mdai.gov.kz", ConnState.SUSPENDED, "abnormal traffic", "test"
            )
        finally:
            await other.close()
        refused = await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], "127.0.0.2")
        assert (refused.code, refused.text.split(" ", 1)[0]) == (
            replies.SUSPENDED.code,
            replies.SUSPENDED.status,
        )
