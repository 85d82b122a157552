"""The admin API in-process over real services, for unit tests of the /v1/ routes.

`admin_api(tmp_path)` opens a SQLite store and a real spool under tmp_path,
builds the node's services over them (`admin.api.build_services`, with the
spool behind `ugem.adapters.spool_queue.SpoolQueue`) on a `FakeClock` (and, for the
applications' DNS readiness check, the `dns_ready` set: its domains pass mx,
spf, dkim and dmarc, the others fail them), mounts the app,
creates one token per role and gives an `httpx.AsyncClient` that talks to the
app without a socket (ASGI). `api.call(method, path, role, json)` sends a
request as that role (None: no token). Notices go to `api.outbox`, which
keeps each `OutgoingMail` (`sent`) or, with `fail` set, raises
`SpoolFullError` as a full spool would. Everything is closed on exit.
The drain's two halves are mounted too (`/v1/drain` hands the queue to the
node a request names, over HTTP; `/v1/queue/import` adopts into the spool,
with the limits of a default config; the drain's files under tmp_path/drain).
`settings` (an `AdminConfig`) sets the app's limits, `reputation` the service
behind /v1/reputation (default: one that checks nothing), `traffic` the source of
the connections' traffic (default: none, as with the detector off), `message_index`
the file behind /v1/messages (default: none, as an API without one); `listening(app,
settings)` serves the app on a real loopback socket (`AdminServer`, port chosen by the
system) for tests that need real HTTP connections.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from admin.api import OperatorServices, build_services
from admin.server import AdminServer, create_app
from relay.queue.spool import Spool
from tests.support.connections import plain
from ugem.adapters.spool_queue import Returner, SpoolQueue
from ugem.core.clock import FakeClock
from ugem.core.config import AdminConfig, Config
from ugem.core.drain_state import DrainFiles
from ugem.core.errors import SpoolFullError
from ugem.core.metrics import Metrics
from ugem.core.model import ConnState
from ugem.core.registry import Registry
from ugem.core.registry_watch import StoreStatus
from ugem.core.services.applications import Finding
from ugem.core.services.audit import AuditLog
from ugem.core.services.drain import DrainService, Receiver
from ugem.core.services.messages import MessageService
from ugem.core.services.notices import NoticeSettings, OutgoingMail
from ugem.core.services.reputation import ReputationService
from ugem.core.services.tokens import Role
from ugem.core.services.traffic import TrafficSource
from ugem.core.services.transfer import TransferLimits, TransferService
from ugem.core.store.sqlite import SqliteStore
from ugem.core.transfer_client import HttpReceiver

POSTMASTER = "postmaster@gw.test"
OPERATORS = "noc@sts.test"
NOTICES = NoticeSettings(POSTMASTER, "gw.test", OPERATORS)
DNS_FINDINGS = ("mx", "spf", "dkim", "dmarc")  # relay.readiness's, for an RSA-only key


@dataclass
class ListOutbox:
    """An `Outbox` that keeps what it is given (or fails when `fail` is set)."""

    sent: list[OutgoingMail] = field(default_factory=list)
    fail: bool = False

    async def send(self, mail: OutgoingMail) -> str:
        if self.fail:
            raise SpoolFullError("spool full (test)")
        self.sent.append(mail)
        return f"NOTICE{len(self.sent):06d}"


class _Ready:
    def readiness(self) -> tuple[bool, str]:
        return True, "ok"

    def store_status(self) -> StoreStatus | None:
        return None

    def peers(self) -> list[tuple[int, str]]:
        return []  # one worker


@dataclass
class AdminApi:
    app: FastAPI
    client: httpx.AsyncClient
    services: OperatorServices
    store: SqliteStore
    registry: Registry
    spool: Spool
    clock: FakeClock
    metrics: Metrics
    dns_ready: set[str]
    outbox: ListOutbox
    secrets: dict[Role, str] = field(default_factory=dict)

    async def call(
        self, method: str, path: str, role: Role | None = Role.ADMIN, body: Any = None
    ) -> httpx.Response:
        headers = {} if role is None else {"Authorization": f"Bearer {self.secrets[role]}"}
        return await self.client.request(method, path, json=body, headers=headers)


@contextlib.asynccontextmanager
async def admin_api(
    tmp_path: Path,
    clock: FakeClock | None = None,
    settings: AdminConfig | None = None,
    reputation: ReputationService | None = None,
    traffic: TrafficSource | None = None,
    message_index: Path | None = None,
) -> AsyncIterator[AdminApi]:
    clock = clock or FakeClock()
    store = SqliteStore(tmp_path / "registry.db")
    registry = Registry(store, clock)
    spool = Spool(tmp_path / "queue.db", clock, Metrics())
    await spool.open()
    metrics, dns_ready = Metrics(), set[str]()

    async def dns_check(domain: str) -> list[Finding]:
        ready = domain in dns_ready
        return [Finding(name, ready, "set by the test") for name in DNS_FINDINGS]

    outbox = ListOutbox()
    queue = SpoolQueue(spool, returner=Returner("gw.test", clock))  # DSNs of bounces
    services = build_services(
        store, registry, queue, clock, metrics, dns_check, outbox, NOTICES,
        reputation=reputation,
        traffic_source=traffic,
        messages=None if message_index is None else MessageService(message_index, clock),
        drain=drain_half(queue, DrainFiles(tmp_path / "drain"), AuditLog(store, clock), clock),
        transfer=transfer_half(queue, DrainFiles(tmp_path / "drain"), AuditLog(store, clock)),
    )  # fmt: skip
    app = create_app(_Ready(), metrics, services, settings)
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="http://admin.test")
    api = AdminApi(app, client, services, store, registry, spool, clock, metrics, dns_ready, outbox)
    try:
        for role in Role:
            _, api.secrets[role] = await services.tokens.create(f"{role}-token", role, "test")
        yield api
    finally:
        if services.drain is not None:
            await services.drain.close()
        await client.aclose()
        await spool.close()
        await store.close()


def drain_half(
    queue: SpoolQueue, files: DrainFiles, audit: AuditLog, clock: FakeClock
) -> DrainService:
    """The sending half over `queue`, handing mail to a real node's API over HTTP."""

    def connect(to: str, token: str) -> Receiver:
        return HttpReceiver(to, token, "gw.test")

    return DrainService(queue, files, audit, clock, connect)


def transfer_half(queue: SpoolQueue, files: DrainFiles, audit: AuditLog) -> TransferService:
    """The receiving half over `queue`, with a default config's limits."""

    def draining() -> str | None:
        request = files.request()
        return None if request is None else request.to

    return TransferService(queue, audit, audit.clock, TransferLimits.of(Config()), draining)


@contextlib.asynccontextmanager
async def listening(app: FastAPI, settings: AdminConfig | None = None) -> AsyncIterator[int]:
    """`app` served on 127.0.0.1 as the node serves it; the port."""
    server = AdminServer("127.0.0.1:0", app, settings)
    await server.start()
    try:
        yield server.port
    finally:
        await server.stop()


async def add_two_connections(api: AdminApi) -> None:
    """a.gov.kz active and b.gov.kz suspended ("spam"), as the role tables expect."""
    await api.store.add(plain("a.gov.kz", "192.0.2.10"))
    await api.store.add(plain("b.gov.kz", "192.0.2.11"))
    await api.registry.set_state("b.gov.kz", ConnState.SUSPENDED, "spam", "test")
