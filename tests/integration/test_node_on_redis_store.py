"""Scenario: a node whose registry lives in Redis (`[store] url = "redis://..."`).

The state several nodes share: a connection added by one process is seen by
the node, mail relays, and a suspension made through another store object
(another node, the CLI) gives the connection's server 451 on its next MAIL.
Against a real private redis-server.
"""

from __future__ import annotations

import time
from pathlib import Path

from relay import replies
from tests.support.node import api_client, node_config, node_relaying_to, running_node, send_mail
from tests.support.sink import Sink
from tests.support.waiting import eventually
from ugem.core.clock import SystemClock
from ugem.core.model import ConnState
from ugem.core.registry import Registry
from ugem.core.services.tokens import Role
from ugem.core.store import open_store
from ugem.node import REGISTRY_SYNC_INTERVAL

CONN, SERVER = "mdai.gov.kz", "127.0.0.2"


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


async def test_a_suspension_made_on_one_node_is_refused_by_the_other_at_once(
    tmp_path: Path, sink: Sink, redis_url: str
) -> None:
    """Two nodes on one Redis store (issue 14, item 5): an operator suspends the
    connection through node A's API; node B refuses its server's next MAIL (451): the
    bound is that next command, which syncs B's registry first, and B's own view (its
    scheduler holds the connection's mail) follows within REGISTRY_SYNC_INTERVAL even
    with no SMTP traffic at all."""
    route = {"routes": {"example.org": f"{sink.host}:{sink.port}"}}
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
    a_config, _ = await node_relaying_to(tmp_path / "a", sink, store={"url": redis_url})
    b_config, _ = node_config(tmp_path / "b", store={"url": redis_url}, delivery=route)
    async with running_node(a_config) as a, running_node(b_config) as b:
        for config in (a_config, b_config):
            sent = await send_mail(config, f"a@{CONN}", ["x@example.org"], SERVER)
            assert sent.ok, sent.text
        async with api_client(a, "noc", Role.OPERATOR) as api:
            answer = await api.post(f"/v1/connections/{CONN}/suspend", json={"reason": "test"})
        assert answer.status_code == 200, answer.text
        suspended_at = time.monotonic()
        assert b.registry is not None

        def seen_by_b() -> bool:
            conn = b.registry.get(CONN) if b.registry is not None else None
            return conn is not None and conn.state == ConnState.SUSPENDED

        await eventually(seen_by_b, 3 * REGISTRY_SYNC_INTERVAL, "B's registry synced")
        assert time.monotonic() - suspended_at <= 3 * REGISTRY_SYNC_INTERVAL
        refused = await send_mail(b_config, f"a@{CONN}", ["x@example.org"], SERVER)
        assert (refused.code, refused.text.split(" ", 1)[0]) == (
            replies.SUSPENDED.code,
            replies.SUSPENDED.status,
        )
