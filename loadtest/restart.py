"""Restart with a full queue: how soon a gateway restarted over N queued messages delivers.

`restart(options)` runs, in a work directory:

1. `ugem serve` (loadtest.gateway) whose route for the test domain points at
   a loopback port where nothing listens, with `[delivery] min_backoff` of
   an hour (each message's first attempt is refused and deferred, and none is
   retried while the queue fills) and the SMTP caps (per address, total,
   queue backlog) raised above the load;
2. the generator sends `messages` to it; the queue is then read from every
   worker's /metrics (`ugem_queue_messages`, summed) until it holds every
   accepted message (or `QUEUE_WAIT` passes);
3. SIGTERM to the gateway (its exit code and the time it took are kept);
   `ugem queue retry --all` (the node stopped) makes the deferred mail due
   now, as an operator would once the next hop is back;
4. a sink process listens on the next hop's port; `ugem serve` starts again
   over the same data. From the process start (wall clock) it measures the
   time to ready (/readyz of every worker), to the first message at the sink
   and to the last, waiting until every accepted message arrived or none
   arrived for `stall` seconds; then tells the sink which ids were sent
   (lost, duplicates).

The node's memory (VmRSS of `ugem serve` and its workers, loadtest.memory) is read
three times: holding the full queue before the stop, once ready after the restart, and
once every message arrived (`rss_kib`; None where it could not be read).
The gateway and the sink are stopped at the end, on errors and on
cancellation too; the work directory is removed unless `keep`.
`render_text` and `render_json` print the `RestartResult`.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from loadtest import generator, memory
from loadtest.compare import DEFAULT_SOURCES, DOMAIN, SENDER_DOMAIN
from loadtest.content import SizeDist
from loadtest.errors import TargetError
from loadtest.gateway import GatewayInstance
from loadtest.generator import load_against, run_header
from loadtest.ports import free_port
from loadtest.processes import POLL, SinkProcess
from loadtest.report import Report

QUEUE_WAIT = 60.0  # seconds for the queue gauge to show every accepted message
FILL_BACKOFF = 3600.0  # no retry while the queue fills


@dataclass(frozen=True)
class RestartOptions:
    messages: int = 100_000
    workers: int | None = None
    size: SizeDist = SizeDist("fixed", 2048)
    connections: int = 50
    per_connection: int = 100
    sources: tuple[str, ...] = DEFAULT_SOURCES
    stall: float = 30.0
    timeout: float = 60.0
    ugem_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    workdir: Path | None = None
    keep: bool = False


def gateway_settings(options: RestartOptions) -> dict[str, dict[str, str]]:
    """The config the run needs, with the caller's overrides applied last."""
    settings = {
        "smtp": {
            "max_connections": str(max(2000, 2 * options.connections)),
            "max_connections_per_ip": str(max(100, options.connections)),
            "max_queue_backlog": str(max(200_000, 2 * options.messages)),
        },
        "delivery": {"min_backoff": f"{FILL_BACKOFF:g}", "max_backoff": f"{FILL_BACKOFF:g}"},
    }
    for section, keys in options.ugem_overrides.items():
        settings.setdefault(section, {}).update(keys)
    return settings


@dataclass(frozen=True)
class RestartResult:
    options: RestartOptions
    fill: Report
    queued: dict[str, int]  # by state, before the stop
    stop_exit: int | None
    stop_seconds: float
    made_due: str  # what `ugem queue retry --all` said
    ready_s: float | None  # from the process start
    first_arrival_s: float | None
    last_arrival_s: float | None
    sink: dict[str, Any]
    rss_kib: dict[str, int | None] = field(default_factory=dict)  # full, ready, delivered

    @property
    def arrived(self) -> int:
        return int(self.sink.get("unique_ids") or 0)

    @property
    def delivery_rate(self) -> float | None:
        """Messages arrived per second from the process start to the last arrival."""
        if not self.last_arrival_s or not self.arrived:
            return None
        return self.arrived / self.last_arrival_s

    def complete(self) -> bool:
        return self.fill.accepted > 0 and self.arrived == self.fill.accepted


async def restart(options: RestartOptions, log: TextIO = sys.stderr) -> RestartResult:
    """The whole run; see the module docstring."""
    work = options.workdir or Path(tempfile.mkdtemp(prefix="loadtest-restart-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return await _run(options, work, log)
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)


async def _run(options: RestartOptions, work: Path, log: TextIO) -> RestartResult:
    hop = ("127.0.0.1", free_port())
    gateway = GatewayInstance(
        work / "ugem", free_port(), free_port(), DOMAIN, hop, options.sources, SENDER_DOMAIN,
        options.workers, gateway_settings(options),
    )  # fmt: skip
    sink: SinkProcess | None = None
    try:
        log.write(f"starting the gateway on 127.0.0.1:{gateway.port}, next hop {hop[1]} (down)\n")
        await gateway.start()
        log.write(f"filling the queue with {options.messages} messages\n")
        fill = await generator.run(
            load_against(options, gateway.port, "restart"), progress=_tty(log)
        )
        queued = await _queue_holds(gateway, fill.report.accepted)
        rss = {"full": _rss(gateway)}
        log.write(f"queued {sum(queued.values())} ({_states(queued)}); stopping with SIGTERM\n")
        stop_started = time.monotonic()
        stop_exit = await gateway.stop()
        stop_seconds = time.monotonic() - stop_started
        made_due = (await asyncio.to_thread(gateway.cli, "queue", "retry", "--all")).strip()
        sink = await SinkProcess.start(work / "sink", listen=hop)
        log.write(f"{made_due}; sink on {hop[1]}; starting the gateway again\n")
        ready, first, last, stats = await _timed_restart(
            gateway, sink, fill.report.accepted, options, rss
        )
        stats = await sink.expect(fill.accepted_ids)
        rss["delivered"] = _rss(gateway)
    finally:
        await gateway.stop()
        if sink is not None:
            await sink.stop()
    return RestartResult(
        options, fill.report, queued, stop_exit, stop_seconds, made_due, ready, first, last, stats,
        rss,
    )  # fmt: skip


def _rss(gateway: GatewayInstance) -> int | None:
    """VmRSS of the node's process tree in KiB; None when it is not running."""
    if gateway.proc is None or gateway.proc.poll() is not None:
        return None
    try:
        return memory.sample(gateway.proc.pid).rss_kib
    except TargetError:
        return None


def _tty(log: TextIO) -> TextIO | None:
    return log if log.isatty() else None


async def _queue_holds(gateway: GatewayInstance, count: int) -> dict[str, int]:
    """The queue by state once it holds `count` messages (or after QUEUE_WAIT)."""
    deadline = time.monotonic() + QUEUE_WAIT
    while True:
        queued = await asyncio.to_thread(gateway.queue_counts)
        if sum(queued.values()) >= count or time.monotonic() > deadline:
            return queued
        await asyncio.sleep(POLL)


async def _timed_restart(
    gateway: GatewayInstance,
    sink: SinkProcess,
    count: int,
    options: RestartOptions,
    rss: dict[str, int | None],
) -> tuple[float | None, float | None, float | None, dict[str, Any]]:
    """Restart; (ready, first arrival, last arrival) in seconds from the spawn, and stats;
    the node's memory once ready goes into `rss`."""
    await gateway.respawn()
    ready = time.time() - gateway.spawned_at
    rss["ready"] = _rss(gateway)
    stats = await sink.drain(count, options.stall)
    if not stats["messages"]:
        raise TargetError(
            f"nothing arrived at the sink in {options.stall:g} s after the restart; "
            f"see {gateway.log}"
        )
    return (
        ready,
        _since(stats["first_arrival"], gateway),
        _since(stats["last_arrival"], gateway),
        stats,
    )


def _since(wall: float | None, gateway: GatewayInstance) -> float | None:
    return None if wall is None else float(wall) - gateway.spawned_at


def _states(queued: dict[str, int]) -> str:
    return ", ".join(f"{state} {n}" for state, n in sorted(queued.items()) if n) or "empty"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def render_text(result: RestartResult) -> str:
    o, fill, sink = result.options, result.fill, result.sink
    rate = result.delivery_rate
    workers = o.workers or 1
    rows = [
        ("load", f"{o.messages} messages of {o.size.describe()} over {o.connections} "
                 f"connections, {workers} worker{'s' if workers > 1 else ''}"),
        ("fill", f"accepted {fill.accepted} of {fill.sent} at {fill.accept_rate:.0f} msg/s "
                 f"in {fill.elapsed:.1f} s; refused {sum(fill.refused.values())}, "
                 f"failed {sum(fill.failed.values())}"),
        ("queued", f"{sum(result.queued.values())} ({_states(result.queued)})"),
        ("stop", f"SIGTERM: exit {result.stop_exit} in {result.stop_seconds:.2f} s"),
        ("queue retry --all", result.made_due),
        ("restart to ready", _secs(result.ready_s)),
        ("to first arrival", _secs(result.first_arrival_s)),
        ("to last arrival", _secs(result.last_arrival_s)
                            + (f" ({rate:.0f} msg/s from the start)" if rate else "")),
        ("memory (RSS)", _memory(result.rss_kib)),
        ("arrived", f"{sink.get('messages')} messages, {result.arrived} distinct; "
                    f"lost {sink.get('lost')}, duplicates {sink.get('duplicates')}"),
    ]  # fmt: skip
    return "\n".join(f"{name:<19}{value}" for name, value in rows) + "\n"


def _memory(rss: dict[str, int | None]) -> str:
    names = {"full": "full queue", "ready": "ready", "delivered": "delivered"}
    shown = [f"{names[k]} {memory.mib(v)}" for k, v in rss.items() if v is not None and k in names]
    return ", ".join(shown) or "-"


def render_json(result: RestartResult) -> dict[str, Any]:
    o = result.options
    return {
        **run_header(o, o.workers or 1),
        "fill": result.fill.to_json(),
        "queued": result.queued,
        "stop": {"exit": result.stop_exit, "seconds": result.stop_seconds},
        "made_due": result.made_due,
        "restart_s": {
            "ready": result.ready_s,
            "first_arrival": result.first_arrival_s,
            "last_arrival": result.last_arrival_s,
        },
        "delivery_rate": result.delivery_rate,
        "complete": result.complete(),
        "sink": result.sink,
        "rss_kib": result.rss_kib,
    }
