"""The wiring of one node: the one place that knows every part.

`Node.start()` opens the store and the registry, recovers the spool, starts
the scheduler, the trace writer, the anomaly detector (`[anomaly] mode`;
`[anomaly] shared_traffic` says whether it judges every worker's and node's
traffic or this worker's own; it takes up the baselines kept in the store),
the mail log and its message index (`[log]`: `ugem.core.maillog_writer`),
the SMTP listener and the admin listener, in that order (the detector's
enforcer writes the node's `ugem.core.throttle` board of throttled connections,
the SMTP listener reads it at MAIL FROM, the admin API shows it) (so nothing is
accepted before the queue is recovered nor before the observers listen; mail to
`[reputation] fbl_address` goes from the SMTP listener to the complaint service,
`ugem.core.services.complaints`, which the admin API lists; a node being
drained into another, `ugem.draining`, starts with its scheduler paused and
its listener refusing), and
the periodic steps: the registry's sync (fail-static: `ugem.core.registry_watch`
probes the store; each worker keeps its registry copy in the data dir and
relays on it while the store is down, and starts on it when the store is
down at start; the detector then starts once the store is back, from the
baselines kept there; worker 0 checks a Redis store's persistence settings
at start: `ugem.core.store.persistence`) and (worker 0) the disconnections
scheduled for a time that has come, by the node's clock, the writing of
the detector's baselines to the store (also at stop) and, when `[node]
public_addresses` and `[reputation] dnsbl_zones` are both set, the watch of
the gateway's addresses on the DNS blocklists (`ugem.core.services.reputation`:
a check at start, then every `[reputation] interval` seconds of the node's
clock; its state is the admin API's `/v1/reputation`; a listing or a
delisting opens or grows an incident of the gateway itself and alerts the
operators: `ugem.core.services.gateway`, whose `GatewayWatch` every worker
also runs over its bus, for bursts of replies refusing its mail as
blocklisted). The notice templates
are checked first: a broken one stops the start with its name, and so does a
bad `[reputation] reply_patterns` table (read once here and handed to the
scheduler, which classifies every delivery reply with it; one
`relay.deliver.backoff.Backoff` a worker holds rate-limited destinations back,
shared by its deliverer and scheduler). `stop()` runs
the order backwards: stop accepting (sessions get 421), let in-flight
deliveries finish within a grace period, flush the spool, close the store.
`run(config)` is `ugem serve`: it starts a node, waits for SIGTERM or SIGINT,
stops it and returns 0; SIGHUP meanwhile is `reload()`: the STARTTLS
certificate and key are read again (sessions are kept; a pair that cannot be
loaded keeps the old one and logs an ERROR). A part that fails to start
stops the ones already started and raises its error, which the CLI prints as
one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from admin.api import OperatorServices, build_services
from admin.server import AdminServer, create_app
from anomaly.detector import Detector
from anomaly.enforce import Enforcer
from anomaly.feed import Feed, LocalFeed, SharedFeed
from relay.accept.listener import AcceptServer, bind_listener
from relay.deliver.backoff import Backoff
from relay.deliver.backoff_share import PULL_S as BACKOFF_PULL_S
from relay.deliver.backoff_share import SharedCuts
from relay.deliver.dkim_sign import signer_from_config, start_processes
from relay.deliver.routing import Router
from relay.deliver.sign_process import SigningProcesses
from relay.deliver.transaction import Deliverer
from relay.inbound.checks import inbound_from_config
from relay.queue.own_mail import gateway_signer
from relay.queue.schedule import Scheduler
from relay.queue.spool import Spool, spool_path
from relay.readiness import readiness_from_config
from ugem.adapters.outbox import SchedulerOutbox
from ugem.adapters.readiness import application_check
from ugem.adapters.reputation import reputation_service
from ugem.adapters.spool_queue import node_queue
from ugem.adapters.traffic import CountingFeed, DetectorTraffic
from ugem.core import workdays
from ugem.core.clock import Clock, SystemClock
from ugem.core.config import Config, load_config, parse_hostport
from ugem.core.drain_state import DrainFiles, FileLock
from ugem.core.errors import ConfigError, StoreError, UgemError
from ugem.core.events import EventBus
from ugem.core.log import event, set_level
from ugem.core.maillog_writer import MailLogWriter, writer_from_config
from ugem.core.metrics import Metrics
from ugem.core.registry import Registry
from ugem.core.registry_copy import COPY_NAME, CopyFile
from ugem.core.registry_watch import Freshness, StoreStatus
from ugem.core.reply_class import configured_patterns
from ugem.core.runtime import INTERVAL as STATUS_INTERVAL
from ugem.core.runtime import RUN_DIR, read_workers
from ugem.core.services.complaints import ComplaintService
from ugem.core.services.gateway import GatewaySettings, GatewayWatch
from ugem.core.services.messages import MessageService
from ugem.core.services.notices import notice_settings
from ugem.core.services.reputation import ReputationService
from ugem.core.store import open_store
from ugem.core.store.base import Store
from ugem.core.store.persistence import check_persistence
from ugem.core.store.traffic import TrafficLog, open_traffic_log
from ugem.core.tasks import cancel_and_wait, raise_if_cancelled
from ugem.core.throttle import ThrottleBoard
from ugem.core.trace_writer import TraceWriter
from ugem.core.traffic_history import TrafficHistory
from ugem.draining import CHECK_INTERVAL, DrainWatch, drain_service, transfer_service
from ugem.fd_limit import fd_needed, raise_fd_limit
from ugem.reload import ReloadResult, merged, plan
from ugem.status_file import StatusFile

log = logging.getLogger(__name__)

REGISTRY_SYNC_INTERVAL = 1.0  # seconds; SMTP commands also sync on their own
DISCONNECT_CHECK_INTERVAL = 5.0  # seconds between checks for scheduled disconnections due
BASELINE_SAVE_INTERVAL = 300.0  # seconds between writes of the learned baselines to the store
ENFORCER_START_RETRY = 2.0  # seconds between tries to start the detector once the store is back
PRIVATE_ADMIN = "127.0.0.1:0"  # the admin listener of a worker other than 0 (admin.node_wide)


class Node:
    def __init__(
        self,
        config: Config,
        clock: Clock | None = None,
        worker: int = 0,
        smtp_socket: socket.socket | None = None,
        config_path: str | None = None,
    ) -> None:
        self._smtp_socket = smtp_socket  # bound by the supervisor (None: bind it here)
        self._config_path = config_path  # read again on a reload (None: TLS alone reloads)
        self._router: Router | None = None
        self._reloads: set[asyncio.Task[ReloadResult]] = set()
        self.last_reload: ReloadResult | None = None  # shown by `ugem reload`, `ugem status`
        self.config = config
        self.worker = worker
        self.clock = clock or SystemClock()
        self.metrics = Metrics()
        self.metrics.ready.set_function(lambda: float(self.readiness()[0]))  # as /readyz
        self.bus = EventBus()
        self.store: Store | None = None
        self.registry: Registry | None = None
        self.spool: Spool | None = None
        self.scheduler: Scheduler | None = None
        self.smtp: AcceptServer | None = None
        self.signing: SigningProcesses | None = None
        self.admin: AdminServer | None = None
        self.trace: TraceWriter | None = None
        self.maillog: MailLogWriter | None = None  # the mail log and the message index
        self.enforcer: Enforcer | None = None
        self.throttle = ThrottleBoard()  # written by the enforcer, read by the relay
        self.traffic: TrafficLog | None = None
        self._deliverer: Deliverer | None = None
        self.backoff: Backoff | None = None  # rate-limited destinations held back
        self.services: OperatorServices | None = None
        self.reputation: ReputationService | None = None
        self.gateway: GatewayWatch | None = None  # the gateway's own incidents
        self.draining: DrainWatch | None = None  # this worker's part in a drain of the node
        self._tasks: list[asyncio.Task[None]] = []
        self.status_file: StatusFile | None = None  # <data_dir>/run/worker-<i>.json
        self._data_lock: FileLock | None = None  # this worker's claim on the data directory
        self._enforcing = False  # the detector started (it read its baselines)
        self._cuts: SharedCuts | None = None  # the workers' rate-limit cuts (workers > 1)
        self._state = "starting"

    def readiness(self) -> tuple[bool, str]:
        if self._state != "running":
            return False, f"node is {self._state}"
        if self.spool is not None:
            ok, reason = self.spool.health()
            if not ok:
                return False, f"spool unhealthy: {reason}"
        if self.scheduler is not None:
            ok, reason = self.scheduler.health()
            if not ok:
                return False, reason
        if self.draining is not None and (drained := self.draining.refusal()) is not None:
            return False, drained
        if self.registry is not None:  # ok, degraded (still ready) or its copy too old
            return self.registry.watch.readiness()
        return True, "ok"

    def store_status(self) -> StoreStatus | None:
        return None if self.registry is None else self.registry.watch.status()

    def peers(self) -> list[tuple[int, str]]:
        """Worker 0 of several: the other running workers' private admin listeners."""
        if self.worker != 0 or self.config.node.workers < 2:
            return []
        found = read_workers(self.config.data_path / RUN_DIR, time.time()).found
        return [(w.worker, w.admin) for w in found if w.running and w.worker and w.admin]

    def addresses(self) -> tuple[str, str]:
        """(SMTP, admin) host:port as bound; "" for one not listening (yet)."""
        smtp = _bound(self.config.smtp.listen, self.smtp.port) if self.smtp is not None else ""
        admin = _bound(self.admin.listen, self.admin.port) if self.admin is not None else ""
        return smtp, admin

    async def start(self) -> None:
        try:
            await self._start_parts()
        except BaseException:
            await self.stop()
            raise
        self._state = "running"
        smtp, admin = self.addresses()
        if self.status_file is not None:
            await self.status_file.write()  # running now, for `ugem status`
        event(
            log,
            "node_started",
            worker=self.worker,
            smtp=smtp,
            admin=admin or "off",  # as bound: worker 0 the node's, others a private port
        )

    def _claim_data_dir(self) -> None:
        """This worker's lock on the data directory (`run/worker-<i>.lock`, held until the
        process ends): a second node started on the same directory stops here, naming the
        process that holds it, before it opens the spool or the store."""
        run = self.config.data_path / RUN_DIR
        run.mkdir(parents=True, exist_ok=True)
        lock = FileLock(run / f"worker-{self.worker}.lock")
        if not lock.try_acquire():
            holder = (run / f"worker-{self.worker}.pid").read_text(errors="replace").strip()
            raise UgemError(
                f"node.data_dir {self.config.data_path}: worker {self.worker} of another node "
                f"(pid {holder or '?'}) runs on it; one node per data directory"
            )
        (run / f"worker-{self.worker}.pid").write_text(str(os.getpid()))
        self._data_lock = lock

    def _check_fd_limit(self) -> None:
        """Raise the open-files limit to what the caps need; one WARNING when it falls short."""
        limit = raise_fd_limit(fd_needed(self.config))
        if limit.short:
            event(
                log,
                "fd_limit_short",
                logging.WARNING,
                need=limit.need,
                soft=limit.soft,
                hard=limit.hard,
                advice="raise the hard limit (ulimit -Hn, LimitNOFILE=) "
                "or lower [smtp] max_connections",
            )

    async def _start_parts(self) -> None:
        cfg, clock = self.config, self.clock
        notices = notice_settings(cfg)
        notices.templates.check()  # a broken template stops the start, not a decision
        patterns = configured_patterns(cfg.reputation.reply_patterns)  # so does a bad table
        self._check_fd_limit()
        cfg.data_path.mkdir(parents=True, exist_ok=True)
        self._claim_data_dir()  # before anything in it is opened
        if self._smtp_socket is None:  # a busy port stops the start before any file is opened
            self._smtp_socket = bind_listener(cfg.smtp.listen, cfg.smtp.listen_backlog)
        # The detector and the applications ask the working-day calendar; its first
        # question would import `holidays`' country data on the event loop (~0.2 s).
        await asyncio.to_thread(workdays.preload, clock.now())
        self.store = open_store(cfg.store_url)
        self.registry = self._registry(self.store)
        await self.registry.watch.start()  # the store, else a fresh copy on disk, or it fails
        if self.worker == 0 and not self._store_degraded():
            await check_persistence(self.store)
        self.spool = Spool(
            spool_path(cfg, self.worker),
            clock,
            self.metrics,
            max_size_mb=cfg.spool.max_size_mb,
            max_batch=cfg.spool.max_batch,
            reserve_mb=cfg.spool.reserve_mb,
        )
        report = await self.spool.open()
        event(
            log,
            "spool_recovered",
            messages=report.messages,
            quarantined=report.quarantined,
            moved_aside=report.moved_aside or "",
        )
        self.backoff = Backoff(cfg.delivery, clock, self.metrics)  # this worker's
        if cfg.node.workers > 1:  # a 421 one worker hears holds every worker back
            self._share_cuts(self.backoff)
        self._deliverer = Deliverer(
            cfg.delivery, cfg.helo_name, self.metrics, clock, backoff=self.backoff
        )
        router = self._router = Router(self.registry, cfg.delivery, clock)
        own_mail = gateway_signer(cfg, clock)  # DKIM for the DSNs and notices
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
            own_mail,
            patterns=patterns,
            backoff=self.backoff,
        )
        self.registry.on_change(self.scheduler.on_connection_change)
        drain_files = DrainFiles.of(cfg.data_path)
        self.draining = DrainWatch(drain_files, self.worker, self.scheduler, self.metrics, clock)
        await self.draining.begin()  # a node being drained starts with no delivery
        if cfg.anomaly.trace_file:
            self.trace = TraceWriter(
                worker_file(Path(cfg.anomaly.trace_file), self.worker), self.bus, self.metrics
            )
            await self.trace.start()
        self.maillog = writer_from_config(cfg, self.bus, clock, self.metrics, self.worker)
        if self.maillog is not None:
            await self.maillog.start()
        await self.scheduler.start()
        self._repeat("registry_sync", REGISTRY_SYNC_INTERVAL, self.registry.watch.probe)
        outbox = SchedulerOutbox(self.scheduler, clock, own_mail)
        self.reputation = reputation_service(cfg, clock, self.metrics)
        # Mail to [reputation] fbl_address: kept in the store, traced, counted, on the bus.
        complaints = ComplaintService(self.store, clock, self.registry, self.bus, self.metrics)
        queue = node_queue(cfg, self.spool, clock)  # the admin API sees every worker's spool
        # The detector (mode not off) and the hourly counts of what it is fed, for the
        # traffic charts (/v1/connections/{id}/traffic, the console's connection page).
        detector = Detector(keep_counting=True) if cfg.anomaly.mode != "off" else None
        counted = TrafficHistory()
        traffic = None if detector is None else DetectorTraffic(detector, counted)
        self.services = services = build_services(
            self.store,
            self.registry,
            queue,
            clock,
            self.metrics,
            application_check(readiness_from_config(cfg)),
            outbox,
            notices,
            self.throttle,
            self.reputation,
            complaints,
            drain=drain_service(cfg, queue, self.store, clock, self.metrics),
            transfer=transfer_service(cfg, queue, self.store, clock, self.metrics),
            messages=MessageService.of(cfg, clock),
            journal=self.bus.publish,  # the queue's changes, for the mail log
            status_dir=cfg.data_path / RUN_DIR,  # /v1/status
            traffic_source=traffic,
        )
        # Incidents of the gateway itself: bursts of blocklisted replies (every worker, its
        # own deliveries) and listings of its addresses (worker 0's hook, below).
        self.gateway = GatewayWatch(
            services.incidents,
            services.connections.notifier,
            clock,
            GatewaySettings.of(cfg),
            throttle=self.throttle,
            metrics=self.metrics,
        )
        await self.gateway.start(self.bus)
        if cfg.anomaly.mode != "off":
            self.enforcer = Enforcer(
                cfg.anomaly.mode,
                self.bus,
                services.connections,
                self.metrics,
                detector,
                incidents=services.incidents,
                overrides=services.overrides,
                feed=CountingFeed(self._feed(), counted),
                throttle=self.throttle,
            )
            await self._start_enforcer(self.enforcer)
        dkim = signer_from_config(cfg, clock)
        if dkim is not None:  # dkimpy's Python steps beside the loop, not taking turns with it
            self.signing = await start_processes(dkim, cfg)
        self.smtp = AcceptServer(
            cfg,
            self.registry,
            self.scheduler,
            self.bus,
            self.metrics,
            clock,
            self.throttle,
            dkim=dkim,
            inbound=inbound_from_config(cfg, clock, self.metrics),
            complaints=complaints,
        )
        self.draining.attach(self.smtp)
        self._repeat("drain_check", CHECK_INTERVAL, self.draining.check)
        await self.smtp.start(self._smtp_socket)
        if self.worker == 0:  # one worker applies them, so each is applied (and mailed) once
            due = services.connections.disconnect_due
            self._repeat("scheduled_disconnect", DISCONNECT_CHECK_INTERVAL, due)
            if self.reputation.configured:  # and each change logged, alerted, an incident once
                self.reputation.on_change(self.gateway.on_reputation)
                watch = self.reputation.watch()
                self._tasks.append(asyncio.create_task(watch, name="reputation_watch"))
        if cfg.admin.enabled:
            listen = worker_listen(cfg.admin.listen, self.worker)
            with contextlib.suppress(StoreError):  # else it is set on the first list
                if not self._store_degraded():
                    await services.applications.all()  # the overdue gauge starts right
            app = create_app(self, self.metrics, services, cfg.admin)
            self.admin = AdminServer(listen, app, cfg.admin)
            await self.admin.start()
        self.status_file = StatusFile(self, cfg.data_path / RUN_DIR)  # for `ugem status`
        await self.status_file.start()
        self._repeat("status_file", STATUS_INTERVAL, self.status_file.write)

    def _registry(self, store: Store) -> Registry:
        """The registry, fail-static: its copy on disk per worker, `[store]`'s bounds."""
        cfg = self.config
        freshness = Freshness(cfg.store.relay_timeout, cfg.store.max_stale)
        copy = CopyFile(worker_file(cfg.data_path / COPY_NAME, self.worker))
        registry = Registry(store, self.clock, freshness, copy)
        registry.watch.export(self.metrics)
        return registry

    async def _start_enforcer(self, enforcer: Enforcer) -> None:
        """Start the detector; while the store is down at start, once it is back: it starts
        from the baselines kept there, and never writes over them before it has read them."""
        try:
            if self._store_degraded():  # a hung store would cost its timeout once more
                raise StoreError("the store is down since the node started")
            await enforcer.start()
        except StoreError as exc:
            if not self._store_degraded():
                raise
            event(log, "anomaly_start_deferred", logging.WARNING, error=str(exc))
            later = self._start_enforcer_later(enforcer)
            self._tasks.append(asyncio.create_task(later, name="anomaly_start"))
            return
        self._enforcer_started(enforcer)

    def _store_degraded(self) -> bool:
        return self.registry is not None and self.registry.watch.status().degraded

    async def _start_enforcer_later(self, enforcer: Enforcer) -> None:
        while True:
            await asyncio.sleep(ENFORCER_START_RETRY)
            if self._store_degraded():
                continue
            try:
                await enforcer.start()
            except StoreError:
                continue
            except Exception:
                event(log, "anomaly_start_failed", logging.ERROR, exc_info=True)
                return
            event(log, "anomaly_started", worker=self.worker)
            self._enforcer_started(enforcer)
            return

    def _enforcer_started(self, enforcer: Enforcer) -> None:
        self._enforcing = True
        if self.worker == 0:  # with a shared feed all know the same; one writes it
            self._repeat("baseline_save", BASELINE_SAVE_INTERVAL, enforcer.save_baselines)

    def _feed(self) -> Feed:
        """The detector's feed: the shared traffic log when other workers or nodes share it."""
        if not self.config.shares_traffic:
            return LocalFeed(self.bus, self.metrics)
        self.traffic = open_traffic_log(self.config.store_url, self.clock)
        return SharedFeed(self.bus, self.traffic, self.metrics)

    def _share_cuts(self, backoff: Backoff) -> None:
        """Publish this worker's rate-limit cuts and apply the other workers' (a file of the
        node's data directory: relay.deliver.backoff_share)."""
        share = SharedCuts(self.config.data_path / "backoff.db", self.worker, self.clock)
        backoff.on_cut = share.publish
        self._cuts = share

        async def pull() -> None:
            for key, strikes in share.pull():
                backoff.heard(key, strikes)

        self._repeat("backoff_share", BACKOFF_PULL_S, pull)

    def _repeat(self, name: str, interval: float, step: Callable[[], Awaitable[object]]) -> None:
        """Run `step` every `interval` seconds until stop; a failure is logged, not fatal.

        The registry sync picks up store changes (suspensions by the CLI, other
        nodes) without SMTP traffic; the scheduled-disconnect step applies the
        disconnections whose time (by the node's clock) has come.
        """

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await step()
                except StoreError as exc:  # the store down: said once by the registry's watch
                    event(log, f"{name}_failed", logging.INFO, error=str(exc))
                except Exception:
                    event(log, f"{name}_failed", logging.WARNING, exc_info=True)
                raise_if_cancelled()  # a Redis call may have swallowed the stop

        self._tasks.append(asyncio.create_task(loop(), name=name))

    async def _save_baselines(self) -> None:
        """At stop: what the detector learned, kept for the next start (worker 0 writes)."""
        if self.enforcer is None or self.worker != 0 or not self._enforcing:
            return
        try:
            saved = await self.enforcer.save_baselines()
        except Exception:
            event(log, "baseline_save_failed", logging.WARNING, exc_info=True)
            return
        event(log, "baselines_saved", connections=saved)

    def reload(self) -> None:
        """SIGHUP: `reload_config` in a task of its own (a signal handler cannot wait)."""
        task = asyncio.get_running_loop().create_task(self.reload_config(), name="reload")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def reload_config(self) -> ReloadResult:
        """Read the config file again and apply what a running worker can (ugem.reload);
        the STARTTLS certificate and key are read again in any case."""
        event(log, "node_reloading", worker=self.worker)
        result = self._apply_reload()
        if self.smtp is not None:
            self.smtp.reload_tls()
        self.last_reload = result
        if self.status_file is not None:
            await self.status_file.write()  # `ugem reload` waits for this answer
        return result

    def _apply_reload(self) -> ReloadResult:
        now = time.time()
        if self._config_path is None:
            return ReloadResult(now)
        try:
            new = load_config(self._config_path)
            workers = dataclasses.replace(new.node, workers=self.config.node.workers)
            live, restart = plan(self.config, dataclasses.replace(new, node=workers))
            config = merged(self.config, new, live)
            inbound = inbound_from_config(config, self.clock, self.metrics)
        except ConfigError as exc:  # nothing changes: the worker runs on as it was
            event(log, "config_reload_refused", logging.ERROR, error=str(exc))
            return ReloadResult(now, error=str(exc))
        self.config = config
        if self.smtp is not None and any(k.startswith(("smtp.", "auth.")) for k in live):
            self.smtp.reconfigure(config, inbound)
        if self._router is not None and "delivery.routes" in live:
            self._router.reroute(config.delivery.routes)
        if "log.level" in live:
            set_level(config.log.level)
        event(log, "config_reloaded", applied=live, restart=restart)
        if restart:
            event(log, "config_needs_restart", logging.WARNING, keys=restart)
        return ReloadResult(now, live, restart)

    async def stop(self, grace: float = 5.0) -> None:
        if self._state == "stopped":
            return
        self._state = "shutting down"
        if self.status_file is not None:
            self.status_file.stop()
        if self.services is not None and self.services.drain is not None:
            await self.services.drain.close()  # a drain this worker runs stops (mail stays)
        if self.smtp is not None:
            await self.smtp.stop(grace)
        if self.signing is not None:
            await self.signing.stop()
        for task in self._tasks:
            await cancel_and_wait(task)
        if self.scheduler is not None:
            await self.scheduler.stop(grace)
        if self._deliverer is not None:
            await self._deliverer.close()
        if self._cuts is not None:
            self._cuts.close()
        if self.gateway is not None:
            await self.gateway.stop()
        if self.enforcer is not None:
            await self.enforcer.stop()
            await self._save_baselines()
        if self.traffic is not None:
            await self.traffic.close()
        if self.trace is not None:
            await self.trace.stop()
        if self.maillog is not None:
            await self.maillog.stop()
        if self.admin is not None:  # before what its API reads closes: a call after
            await self.admin.stop()  # the store's close would open a connection nobody closes
        if self.spool is not None:
            await self.spool.close()
        if self.draining is not None:
            self.draining.close()  # the worker's lock: a drain sees it stopped
        if self.registry is not None:
            await self.registry.watch.close()
        if self.store is not None:
            await self.store.close()
        if self._smtp_socket is not None:
            self._smtp_socket.close()  # a start that failed before the listener took it
        if self._data_lock is not None:
            self._data_lock.release()
        self._state = "stopped"
        event(log, "node_stopped")


def worker_listen(listen: str, worker: int) -> str:
    """Worker i's admin listener: worker 0's is `[admin] listen`, the node's one; any other
    worker's a private loopback port that worker 0 asks (admin.node_wide)."""
    return listen if worker == 0 else PRIVATE_ADMIN


def _bound(listen: str, port: int) -> str:
    """`listen` (host:port) with the port it was bound on (port 0 resolved)."""
    host, _ = parse_hostport(listen, listen=True)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def worker_file(path: Path, worker: int) -> Path:
    """Worker i's own copy of a per-node file: trace.jsonl -> trace.w1.jsonl (i > 0)."""
    return path if worker == 0 else path.with_name(f"{path.stem}.w{worker}{path.suffix}")


async def serve(
    config: Config,
    worker: int = 0,
    smtp: socket.socket | None = None,
    config_path: str | None = None,
) -> int:
    """Run a node until SIGTERM or SIGINT (SIGHUP: reload); stop it in order; 0 on a clean stop.
    `smtp`: the SMTP port's listening socket, when the supervisor bound it; `config_path`: the
    file a reload reads again."""
    node = Node(config, worker=worker, smtp_socket=smtp, config_path=config_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, node.reload)
    await node.start()
    # What the start made (modules, the registry, the detector's state, a recovered queue) is
    # long-lived: out of the collector's sight, each full collection scans only what came
    # after, instead of 100,000 objects or more (25 ms each, a stall of every session).
    gc.freeze()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})  # blocked by a supervisor
    await stop.wait()
    event(log, "node_stopping", reason="signal")
    await node.stop()
    return 0
