"""The bursting-server scene for the anomaly detector's end-to-end tests.

`BurstScene.start(tmp_path, mode)` runs a node on a `FakeClock` with
`[anomaly] mode` set and two connected servers: `burst.gov.kz` at 127.0.0.2
(its owner's contact at `it@burst.gov.kz`, routed to `notices`) and
`other.gov.kz` at 127.0.0.3; the operators' alerts go to `noc@sts.test`,
routed to `notices` too (`notices_to(rcpt)` picks one's mail). Mail to
example.org goes to `delivered` (accepts all); mail to the burst's recipient
domains goes to `remote`, which defers every message, so the burst stays
queued. `history()` sends one message an hour for a day and more of fake time
(a steady trickle the detector learns as normal); `burst(step)` sends from
ever new senders to many recipient domains, two seconds of fake time apart,
and stops at the first refused MAIL FROM (or after `BURST_MAX` messages).
Nothing sleeps to let time pass: only the fake clock moves; `until` polls a
condition of the node (an async one).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.clients import Sent
from tests.support.node import node_config, running_node, send_mail
from tests.support.sink import Sink, SinkMessage
from ugem.core.clock import FakeClock
from ugem.core.config import Config
from ugem.core.model import Connection, Contact, OrgKind
from ugem.core.store import open_store
from ugem.node import Node

BURST, BURST_IP, OTHER, OTHER_IP = "burst.gov.kz", "127.0.0.2", "other.gov.kz", "127.0.0.3"
OWNER = f"it@{BURST}"
OPERATORS = "noc@sts.test"
# A working Monday, 00:00 in Asia/Almaty: the detector sees Monday whole, so senders count as
# new a day after the first (anomaly.warmup); from New Year's Day it would take five days.
START = 1_772_391_600.0
HISTORY_HOURS = 26  # more than the day after which senders count as new
BURST_MAX = 60  # messages
BURST_RCPTS = 3  # recipients per burst message, each in its own domain
SPAM_DOMAINS = [f"d{i}.example.net" for i in range(BURST_MAX * BURST_RCPTS)]
DEFER = "451 4.3.0 try later"


@dataclass
class BurstScene:
    nodes: list[Node]
    clock: FakeClock
    configs: list[Config]
    delivered: Sink
    remote: Sink
    notices: Sink
    burst_ids: list[str] = field(default_factory=list)
    other_sent: int = 0
    sends: int = 0

    @property
    def node(self) -> Node:
        return self.nodes[0]

    @property
    def config(self) -> Config:
        return self.configs[0]

    def notices_to(self, rcpt: str) -> list[SinkMessage]:
        """The notices and alerts that reached `notices` for `rcpt`."""
        return [m for m in self.notices.messages if m.rcpts == [rcpt]]

    async def send(self, conn: str, sender: str, rcpts: list[str], subject: str) -> Sent:
        source = BURST_IP if conn == BURST else OTHER_IP
        config = self.configs[self.sends % len(self.configs)]  # several nodes: each in turn
        self.sends += 1
        return await send_mail(config, sender, rcpts, source, subject)

    async def history(self) -> None:
        """One message an hour from the same sender, for HISTORY_HOURS hours."""
        for hour in range(HISTORY_HOURS):
            sent = await self.send(BURST, f"news@{BURST}", ["x@example.org"], f"h{hour}")
            assert sent.ok, sent
            self.clock.advance(3600.0)
        await self.delivered.wait_for(HISTORY_HOURS, timeout=30)

    async def other(self) -> None:
        """One message from the other connection; it must be accepted."""
        self.other_sent += 1
        sent = await self.send(OTHER, f"a@{OTHER}", ["y@example.org"], f"o{self.other_sent}")
        assert sent.ok, sent

    async def burst(self) -> Sent | None:
        """The burst; the first refusal, or None if every message was accepted."""
        for i in range(BURST_MAX):
            rcpts = [f"r@{d}" for d in SPAM_DOMAINS[i * BURST_RCPTS : (i + 1) * BURST_RCPTS]]
            sent = await self.send(BURST, f"u{i}@{BURST}", rcpts, f"b{i}")
            if not sent.ok:
                return sent
            self.burst_ids.append(sent.text.rsplit(" ", 1)[-1])
            if i % 5 == 0:
                await self.other()
            self.clock.advance(2.0)
        return None


async def until(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    """Wait until the async `condition` holds (checked often; the deadline bounds a broken run)."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        await asyncio.sleep(0.02)


async def _add(config: Config, conn: Connection) -> None:
    store = open_store(config.store_url)
    try:
        await store.add(conn)
    finally:
        await store.close()


def _connection(conn_id: str, ip: str, contacts: tuple[Contact, ...] = ()) -> Connection:
    return Connection(
        id=conn_id,
        org_name=f"Org of {conn_id}",
        kind=OrgKind.LOCAL_GOVERNMENT,
        domains=(conn_id,),
        servers=(ip,),
        contacts=contacts,
    )


@contextlib.asynccontextmanager
async def burst_scene(
    tmp_path: Path, mode: str, nodes: int = 1, store_url: str = ""
) -> AsyncIterator[BurstScene]:
    """The scene on `nodes` nodes sharing one store (`store_url`; empty: the first node's
    SQLite file), each with its own data directory and ports; mail goes to each in turn."""
    delivered, remote, notices = [await Sink.start("127.0.0.1", 0) for _ in range(3)]
    remote.data_replies = [DEFER] * len(SPAM_DOMAINS)  # at most one session a domain
    hop = {"example.org": delivered, BURST: notices, "sts.test": notices}
    hop |= dict.fromkeys(SPAM_DOMAINS, remote)
    routes = {dom: f"127.0.0.1:{sink.port}" for dom, sink in hop.items()}
    for i in range(1, nodes):
        (tmp_path / f"node{i}").mkdir()
    store = {"url": store_url or f"sqlite:///{tmp_path / 'var' / 'registry.db'}"}
    configs = [
        node_config(
            tmp_path if i == 0 else tmp_path / f"node{i}",
            anomaly={"mode": mode},
            admin={"operators_address": OPERATORS},
            delivery={"routes": routes, "min_backoff": 3600.0, "max_backoff": 3600.0},
            store=store,
        )[0]
        for i in range(nodes)
    ]
    await _add(configs[0], _connection(BURST, BURST_IP, (Contact("Aliya S.", OWNER),)))
    await _add(configs[0], _connection(OTHER, OTHER_IP))
    clock = FakeClock(START)
    try:
        async with contextlib.AsyncExitStack() as stack:
            running = [await stack.enter_async_context(running_node(c, clock)) for c in configs]
            yield BurstScene(running, clock, configs, delivered, remote, notices)
    finally:
        for sink in (delivered, remote, notices):
            await sink.stop()
