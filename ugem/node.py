"""The wiring of one node: the one place that knows every part.

`Node.start()` opens the store and the registry, recovers the spool, starts
the scheduler, the SMTP listener, the admin listener and the trace writer, in
that order (so nothing is accepted before the queue is recovered). `stop()`
runs the order backwards: stop accepting (sessions get 421), let in-flight
deliveries finish within a grace period, flush the spool, close the store.
`run(config)` is `ugem serve`: it starts a node, waits for SIGTERM or SIGINT,
stops it and returns 0. A part that fails to start stops the ones already
started and raises its error, which the CLI prints as one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from admin.api import build_services
from admin.server import AdminServer, create_app
from relay.accept import AcceptServer
from relay.deliver import Deliverer
from relay.mailqueue import SpoolQueue
from relay.routing import Router, make_resolver
from relay.schedule import Scheduler
from relay.spool import Spool, spool_path
from ugem.clock import Clock, SystemClock
from ugem.config import Config, parse_hostport
from ugem.events import EventBus
from ugem.log import event
from ugem.metrics import Metrics
from ugem.registry import Registry
from ugem.services.applications import dns_mx_lookup
from ugem.store import open_store
from ugem.store.base import Store
from ugem.trace import TraceWriter

log = logging.getLogger("ugem.node")

REGISTRY_SYNC_INTERVAL = 1.0  # seconds; SMTP commands also sync on their own


class Node:
    def __init__(self, config: Config, clock: Clock | None = None, worker: int = 0) -> None:
        self.config = config
        self.worker = worker
        self.clock = clock or SystemClock()
        self.metrics = Metrics()
        self.bus = EventBus()
        self.store: Store | None = None
        self.registry: Registry | None = None
        self.spool: Spool | None = None
        self.scheduler: Scheduler | None = None
        self.smtp: AcceptServer | None = None
        self.admin: AdminServer | None = None
        self.trace: TraceWriter | None = None
        self._deliverer: Deliverer | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._state = "starting"

    def readiness(self) -> tuple[bool, str]:
        if self._state != "running":
            return False, f"node is {self._state}"
        if self.spool is not None:
            ok, reason = self.spool.health()
            if not ok:
                return False, f"spool unhealthy: {reason}"
        return True, "ok"

    async def start(self) -> None:
        try:
            await self._start_parts()
        except BaseException:
            await self.stop()
            raise
        self._state = "running"
        event(
            log,
            "node_started",
            worker=self.worker,
            smtp=self.config.smtp.listen,
            admin=self.config.admin.listen if self.config.admin.enabled else "off",
        )

    async def _start_parts(self) -> None:
        cfg, clock = self.config, self.clock
        cfg.data_path.mkdir(parents=True, exist_ok=True)
        self.store = open_store(cfg.store_url)
        self.registry = Registry(self.store, clock)
        await self.registry.sync()
        self.spool = Spool(
            spool_path(cfg, self.worker),
            clock,
            self.metrics,
            max_size_mb=cfg.spool.max_size_mb,
            max_batch=cfg.spool.max_batch,
        )
        report = await self.spool.open()
        event(
            log,
            "spool_recovered",
            messages=report.messages,
            quarantined=report.quarantined,
            moved_aside=report.moved_aside or "",
        )
        self._deliverer = Deliverer(cfg.delivery, cfg.helo_name, self.metrics, clock)
        router = Router(self.registry, cfg.delivery, clock)
        self.scheduler = Scheduler(
            self.spool,
            router,
            self._deliverer,
            self.registry,
            self.bus,
            clock,
            cfg.delivery,
            self.metrics,
            cfg.hostname,
        )
        self.registry.on_change(self.scheduler.on_connection_change)
        if cfg.anomaly.trace_file:
            self.trace = TraceWriter(
                worker_file(Path(cfg.anomaly.trace_file), self.worker), self.bus, self.metrics
            )
            await self.trace.start()
        await self.scheduler.start()
        self._sync_task = asyncio.create_task(self._sync_registry(), name="registry-sync")
        self.smtp = AcceptServer(cfg, self.registry, self.scheduler, self.bus, self.metrics, clock)
        await self.smtp.start()
        if cfg.admin.enabled:
            listen = worker_listen(cfg.admin.listen, self.worker)
            mx = dns_mx_lookup(make_resolver(cfg.delivery))
            queue = SpoolQueue(self.spool)
            services = build_services(self.store, self.registry, queue, clock, self.metrics, mx)
            await services.applications.all()  # the overdue gauge starts right
            self.admin = AdminServer(listen, create_app(self, self.metrics, services))
            await self.admin.start()

    async def _sync_registry(self) -> None:
        """Pick up store changes (suspensions by the CLI, other nodes) without SMTP traffic."""
        assert self.registry is not None
        while True:
            await asyncio.sleep(REGISTRY_SYNC_INTERVAL)
            try:
                await self.registry.sync()
            except Exception:
                event(log, "registry_sync_failed", logging.WARNING, exc_info=True)

    async def stop(self, grace: float = 5.0) -> None:
        if self._state == "stopped":
            return
        self._state = "shutting down"
        if self.smtp is not None:
            await self.smtp.stop(grace)
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
        if self.scheduler is not None:
            await self.scheduler.stop(grace)
        if self._deliverer is not None:
            await self._deliverer.close()
        if self.trace is not None:
            await self.trace.stop()
        if self.spool is not None:
            await self.spool.close()
        if self.store is not None:
            await self.store.close()
        if self.admin is not None:
            await self.admin.stop()
        self._state = "stopped"
        event(log, "node_stopped")


def worker_listen(listen: str, worker: int) -> str:
    """Worker i's admin listener: the configured port + i (port 0 stays 0)."""
    host, port = parse_hostport(listen, listen=True)
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port + worker if port else 0}"


def worker_file(path: Path, worker: int) -> Path:
    """Worker i's own copy of a per-node file: trace.jsonl -> trace.w1.jsonl (i > 0)."""
    return path if worker == 0 else path.with_name(f"{path.stem}.w{worker}{path.suffix}")


async def serve(config: Config, worker: int = 0) -> int:
    """Run a node until SIGTERM or SIGINT; stop it in order; 0 on a clean stop."""
    node = Node(config, worker=worker)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await node.start()
    await stop.wait()
    event(log, "node_stopping", reason="signal")
    await node.stop()
    return 0
