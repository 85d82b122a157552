"""Scenario: a next hop answers "421 4.7.28 ... rate limited", and the node backs off.

A node (on a FakeClock: time moves only when the test says) relays mdai.gov.kz's
mail: example.org goes to the `limited` sink, example.net to the `healthy` one,
each allowed 4 sessions. `limited` answers every RCPT with Gmail's 421 4.7.28 rate
limit until told otherwise. The node:

- classifies the reply (the outcome event's class, the counted code, the metrics);
- halves example.org's concurrency and leaves it alone for `rate_limit_delay`:
  mail queued meanwhile is not tried (not even connected for), while mail for
  example.net goes out at once, its concurrency untouched;
- then tries one message per spacing window; a second 421 doubles the spacing and
  halves the concurrency again (to 1);
- once the hop takes mail again, each delivery undoes a doubling and gives a session
  back (`rate_limit_recovery` = 1), every queued message arrives, and a burst held
  at DATA gets only the sessions recovered so far (3 of 4, while example.net gets
  4); after it, example.org is whole again and forgotten.

A bad `[reputation] reply_patterns` table stops the node's start, naming the key.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from relay.accept.listener import bind_listener
from relay.queue.message import QueueState
from tests.support.node import connect, node_config, queued_until, running_node, send_mail
from tests.support.sink import Sink
from tests.support.waiting import eventually
from ugem.core.clock import FakeClock
from ugem.core.config import Config
from ugem.core.errors import ConfigError
from ugem.core.events import Outcome, Subscription
from ugem.node import Node

CONN, CONN_IP = "mdai.gov.kz", "127.0.0.2"
RATE_LIMITED = (
    "421 4.7.28 [127.0.0.2] Our system has detected an unusual rate of unsolicited mail "
    "originating from your IP address. To protect our users from spam, mail sent from "
    "your IP address has been temporarily rate limited."
)
CONCURRENCY, DELAY, MAX_DELAY = 4, 30.0, 120.0


async def scene(tmp_path: Path, limited: Sink, healthy: Sink, **sections: dict[str, Any]) -> Config:
    delivery = {
        "routes": {
            "example.org": f"{limited.host}:{limited.port}",
            "example.net": f"{healthy.host}:{healthy.port}",
        },
        "concurrency_per_destination": CONCURRENCY,
        "rate_limit_delay": DELAY,
        "rate_limit_max_delay": MAX_DELAY,
        "rate_limit_recovery": 1,
    }
    config, _ = node_config(tmp_path, delivery=delivery, **sections)
    await connect(config, CONN, [CONN_IP])
    return config


async def send(config: Config, rcpt: str) -> str:
    """One message from the connection; its queue id."""
    sent = await send_mail(config, f"a@{CONN}", [rcpt], CONN_IP)
    assert sent.ok, sent.text
    return sent.text.rsplit(" ", 1)[-1]


def outcomes(events: Subscription) -> list[Outcome]:
    found = []
    while not events.queue.empty():
        ev = events.queue.get_nowait()
        if isinstance(ev, Outcome):
            found.append(ev)
    return found


def sample(node: Node, name: str, **labels: str) -> float:
    return node.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_rate_limited_next_hop_gets_fewer_sessions_and_spaced_attempts(
    tmp_path: Path,
) -> None:
    limited, healthy = await Sink.start(), await Sink.start()
    tried: list[str] = []  # every RCPT the limited hop heard
    refusing = {"on": True}

    def rcpt_reply(address: str) -> str | None:
        tried.append(address)
        return RATE_LIMITED if refusing["on"] else None

    limited.rcpt_reply = rcpt_reply
    try:
        config = await scene(tmp_path, limited, healthy)
        clock = FakeClock()
        t0 = clock.now()
        key = f"route:{limited.host}:{limited.port}"
        async with running_node(config, clock) as node:
            backoff = node.backoff
            assert backoff is not None
            events = node.bus.subscribe("test")

            # 1. The 421 is classified, the destination's concurrency halved.
            a = await send(config, "a@example.org")
            await queued_until(node, a, lambda m: m.attempts == 1)
            (ev,) = outcomes(events)
            assert (ev.event, ev.code, ev.reply_class, ev.counted) == (
                "deferred",
                421,
                "rate-limited",
                421,
            )
            assert (backoff.limit(key), backoff.spacing(key)) == (2, DELAY)

            # 2. Meanwhile example.org's mail waits, untried; example.net's goes out.
            b = await send(config, "b@example.org")
            held = await queued_until(node, b, lambda m: m.state == QueueState.DEFERRED)
            assert held.attempts == 0 and "backing off" in held.last_error
            await send(config, "d@example.net")
            await healthy.wait_for(1)
            assert backoff.limit(f"route:{healthy.host}:{healthy.port}") == CONCURRENCY
            clock.set(t0 + 20)  # a's own retry comes due: postponed again, not tried
            await queued_until(node, a, lambda m: m.next_attempt >= t0 + DELAY)
            assert tried == ["a@example.org"] and limited.connections == 1

            # 3. After the pause, one attempt in the window: a second 421 cuts again.
            clock.set(t0 + 2 * DELAY + 1)  # a and b both due
            await eventually(lambda: backoff.limit(key) == 1, 10, "a second cut")
            assert backoff.spacing(key) == 2 * DELAY
            for queue_id in (a, b):
                await queued_until(node, queue_id, lambda m: m.next_attempt > clock.now())
            assert len(tried) == 2

            # 4. The hop recovers: one probe per window, each delivery easing the back-off.
            refusing["on"] = False
            clock.advance(2 * MAX_DELAY + 1)  # past the pause and any spread
            await limited.wait_for(1)
            await eventually(lambda: backoff.limit(key) == 2, 10, "a session given back")
            assert backoff.spacing(key) == DELAY and len(tried) == 3
            clock.advance(2 * MAX_DELAY + 1)
            await limited.wait_for(2)
            await eventually(lambda: backoff.limit(key) == 3, 10, "another one")
            assert backoff.spacing(key) == 0.0 and len(tried) == 4

            # 5. A burst held at DATA: 3 sessions to example.org, 4 to example.net.
            for sink in (limited, healthy):
                sink.data_gate = asyncio.Event()
            for n in range(4):
                await send(config, f"burst{n}@example.org")
                await send(config, f"burst{n}@example.net")
            await healthy.wait_until(lambda: healthy.in_data == 4, 10, "4 sessions in DATA")
            await limited.wait_until(lambda: limited.in_data == 3, 10, "3 sessions in DATA")
            assert limited.in_data == 3 and backoff.limit(key) == 3
            for sink in (limited, healthy):
                assert sink.data_gate is not None
                sink.data_gate.set()
            await limited.wait_for(6)
            await healthy.wait_for(5)
            await eventually(lambda: backoff.held_back() == 0, 10, "example.org forgotten")
            assert backoff.limit(key) == CONCURRENCY

            rate_limited = {"connection": CONN, "class": "rate-limited"}
            delivered = {"destination": "other", "class": "delivered"}  # .org's and .net's class
            await eventually(
                lambda: sample(node, "ugem_destination_replies_total", **delivered) == 6 + 5,
                10,
                "every delivery to example.org and example.net counted",
            )
            assert sample(node, "ugem_delivery_replies_total", **rate_limited) == 2
            assert sample(node, "ugem_delivery_backoff_destinations") == 0
        assert sorted(r for m in limited.messages for r in m.rcpts) == [
            "a@example.org",
            "b@example.org",
            *(f"burst{n}@example.org" for n in range(4)),
        ]
    finally:
        await limited.stop()
        await healthy.stop()


async def test_a_bad_reply_table_stops_the_start_naming_the_key(tmp_path: Path) -> None:
    table = tmp_path / "replies.toml"
    table.write_text('[[rule]]\nclass = "policy"\nregex = "(unclosed"\nsource = "t"\n')
    config, _ = node_config(tmp_path, reputation={"reply_patterns": str(table)})
    node = Node(config, FakeClock())
    with pytest.raises(ConfigError) as info:
        await node.start()
    message = str(info.value)
    assert "reputation.reply_patterns" in message and str(table) in message
    assert "rule 1 regex" in message and "not a regular expression" in message
    assert node.readiness() == (False, "node is stopped")


async def test_a_421_one_worker_hears_holds_the_destination_back_in_every_worker(
    tmp_path: Path,
) -> None:
    """Two workers of one node (as `ugem serve --workers 2` runs them, here in one
    process): whichever one hears the 421 cuts example.org, and the other one holds it
    back too at its next pull of the shared cuts (relay.deliver.backoff_share)."""
    limited, healthy = await Sink.start(), await Sink.start()
    limited.rcpt_reply = lambda address: RATE_LIMITED
    try:
        config = await scene(tmp_path, limited, healthy, node={"workers": 2})
        clock = FakeClock()
        smtp = bind_listener(config.smtp.listen, config.smtp.listen_backlog)  # as a supervisor
        shared = socket.socket(fileno=os.dup(smtp.fileno()))  # the second worker's inherited fd
        first = Node(config, clock, worker=0, smtp_socket=smtp)
        second = Node(config, clock, worker=1, smtp_socket=shared)
        await first.start()
        await second.start()
        try:
            assert first.backoff is not None and second.backoff is not None
            backoffs = (first.backoff, second.backoff)
            await send(config, "x@example.org")
            key = f"route:{limited.host}:{limited.port}"
            await eventually(
                lambda: all(b.limit(key) == CONCURRENCY // 2 for b in backoffs),
                10,
                "both workers cut to half",
            )
            assert {b.spacing(key) for b in backoffs} == {DELAY}
        finally:
            await second.stop(grace=0.5)
            await first.stop(grace=0.5)
    finally:
        await limited.stop()
        await healthy.stop()
