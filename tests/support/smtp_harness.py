"""An `AcceptServer` on loopback for tests, a recording intake and a raw SMTP client.

`accept_server(tmp_path, conns=..., **smtp_keys)` runs the relay's SMTP
listener alone (no spool, no delivery, no inbound SPF/DKIM/DMARC checks) on
127.0.0.1 with a free port, a SQLite-backed registry holding `conns`, and a
`RecordingIntake` that keeps every message it is given in `.messages` (or
raises `.error`, or reports `.waiting` as its backlog); with `complaints`
(e.g. a `ugem.core.services.complaints.ComplaintService`) and `fbl`, mail to
that `[reputation] fbl_address` goes to it. `RawClient` speaks
bytes, for what smtplib will not send (bare LF, NUL, pipelined bursts);
`reply()` reads one whole reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relay.accept.commands import Complaints
from relay.accept.listener import AcceptServer
from relay.deliver.dkim_sign import signer_from_config
from relay.inbound.checks import inbound_from_config
from relay.queue.message import QueuedMessage
from ugem.core.clock import FakeClock
from ugem.core.config import (
    AuthConfig,
    Config,
    DeliveryConfig,
    NodeConfig,
    ReputationConfig,
    SmtpConfig,
)
from ugem.core.events import EventBus
from ugem.core.metrics import Metrics
from ugem.core.model import Connection, ConnState
from ugem.core.registry import Registry
from ugem.core.store.sqlite import SqliteStore

HOSTNAME = "gw.test"


@dataclass
class RecordingIntake:
    messages: list[QueuedMessage] = field(default_factory=list)
    error: Exception | None = None
    waiting: int = 0
    gate: asyncio.Event | None = None  # when set, enqueue waits for it

    async def enqueue(self, msg: QueuedMessage) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        self.messages.append(msg)

    def backlog(self) -> int:
        return self.waiting


@dataclass
class Harness:
    server: AcceptServer
    config: Config
    store: SqliteStore
    registry: Registry
    intake: RecordingIntake
    bus: EventBus
    metrics: Metrics
    clock: FakeClock
    host: str = "127.0.0.1"

    @property
    def port(self) -> int:
        return self.server.port

    async def set_state(self, conn_id: str, state: ConnState) -> None:
        conn = await self.store.get(conn_id)
        assert conn is not None
        await self.store.put(dataclasses.replace(conn, state=state))

    def replies(self, command: str, code: int) -> float:
        value = self.metrics.registry.get_sample_value(
            "ugem_smtp_replies_total", {"command": command, "code": str(code)}
        )
        return value or 0.0


def make_config(
    tmp_path: Path, routes: dict[str, str] | None = None, fbl: str = "", **smtp: Any
) -> Config:
    return Config(
        node=NodeConfig(hostname=HOSTNAME, data_dir=str(tmp_path)),
        smtp=SmtpConfig(**{"listen": "127.0.0.1:0", **smtp}),
        delivery=DeliveryConfig(routes=routes or {}),
        auth=AuthConfig(enabled=False),  # the listener alone: no SPF/DKIM/DMARC checks
        reputation=ReputationConfig(dnsbl_zones=[], fbl_address=fbl),
    )


@contextlib.asynccontextmanager
async def accept_server(
    tmp_path: Path,
    conns: Iterable[Connection] = (),
    routes: dict[str, str] | None = None,
    complaints: Complaints | None = None,
    fbl: str = "",
    **smtp: Any,
) -> AsyncIterator[Harness]:
    config = make_config(tmp_path, routes, fbl, **smtp)
    store = SqliteStore(tmp_path / "registry.db")
    for conn in conns:
        await store.add(conn)
    clock = FakeClock()
    registry = Registry(store, clock)
    intake, bus, metrics = RecordingIntake(), EventBus(), Metrics()
    dkim, inbound = signer_from_config(config, clock), inbound_from_config(config, clock, metrics)
    server = AcceptServer(
        config, registry, intake, bus, metrics, clock, dkim=dkim, inbound=inbound,
        complaints=complaints,
    )  # fmt: skip
    await server.start()
    harness = Harness(server, config, store, registry, intake, bus, metrics, clock)
    try:
        yield harness
    finally:
        await server.stop(grace=1.0)
        await store.close()


@dataclass
class Got:
    lines: list[str]

    @property
    def code(self) -> int:
        return int(self.lines[-1][:3])

    @property
    def line(self) -> str:
        return self.lines[-1]


class RawClient:
    """A byte-level SMTP client on asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, source: str = "127.0.0.1") -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self, timeout: float = 5.0) -> Got:
        lines: list[str] = []
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.reader.readline()
                if not raw:
                    raise ConnectionError(f"closed by the server after {lines!r}")
                line = raw.decode().rstrip("\r\n")
                lines.append(line)
                if line[3:4] != "-":
                    return Got(lines)

    async def command(self, data: bytes) -> Got:
        await self.send(data)
        return await self.reply()

    async def replies(self, count: int) -> list[Got]:
        return [await self.reply() for _ in range(count)]

    async def closed(self, timeout: float = 5.0) -> bool:
        """True when the server closes the connection (after any last bytes) in time."""
        async with asyncio.timeout(timeout):
            while await self.reader.read(4096):
                pass
        return True

    async def session(self, helo: bytes = b"EHLO client.test\r\n") -> Got:
        """Read the greeting and say EHLO; the EHLO reply."""
        await self.reply()
        return await self.command(helo)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def raw_client(port: int, source: str = "127.0.0.1") -> AsyncIterator[RawClient]:
    client = await RawClient.open(port, source)
    try:
        yield client
    finally:
        await client.close()
