"""`ugem status [--json]`: one screen of the node, running or not.

Read beside the node, as `ugem queue` is: the workers' own status files in
`<data_dir>/run` (version, pid, uptime, listeners, readiness, their last
warnings and errors), every worker's spool file (the queue by state) and the
store (connections by state, open incidents), through
`ugem.core.services.status.StatusService`, which GET /v1/status calls too.
Exit 0 when at least one worker runs and every running one is ready (or
degraded: it still takes mail), 1 otherwise (no worker running, one not
ready), so a script may use it as a check. A part that cannot be read is
named under "problems" and the rest is still shown.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from typing import Any

from relay.queue.spool import spool_paths
from ugem.adapters.spool_queue import SpoolQueue, open_spools
from ugem.cli import add_json_flag, print_json
from ugem.core import times
from ugem.core.clock import SystemClock
from ugem.core.config import Config
from ugem.core.runtime import RUN_DIR
from ugem.core.services.audit import AuditLog
from ugem.core.services.incidents import IncidentService
from ugem.core.services.status import NodeStatus, StatusService
from ugem.core.store import open_store

TAKING_MAIL = ("ready", "degraded")


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("status", parents=[common], help="one screen of the node")
    add_json_flag(p)
    p.set_defaults(handler=status)


def status(args: argparse.Namespace, config: Config) -> int:
    found = asyncio.run(read_status(config))
    if args.json:
        print_json(as_dict(found))
    else:
        print(render(found))
    running = found.running
    return 0 if running and all(w.status in TAKING_MAIL for w in running) else 1


async def read_status(config: Config) -> NodeStatus:
    clock = SystemClock()
    paths = spool_paths(config)
    async with open_spools(paths, clock, config.spool.max_size_mb) as spools:
        store = open_store(config.store_url)
        try:
            incidents = IncidentService(store, AuditLog(store, clock), clock)
            service = StatusService(
                config.data_path / RUN_DIR, store, SpoolQueue(*spools), incidents, clock
            )
            return await service.status()
        finally:
            await store.close()


def as_dict(found: NodeStatus) -> dict[str, Any]:
    out = dataclasses.asdict(found)
    out["now"] = times.rfc3339(found.now)
    for worker in out["workers"]:
        worker["uptime_s"] = round(found.now - worker["started_at"])
        for key in ("started_at", "written_at"):
            worker[key] = times.rfc3339(worker[key])
        for ev in worker["recent"]:
            ev["ts"] = times.rfc3339(ev["ts"])
    for ev in out["recent"]:
        ev["ts"] = times.rfc3339(ev["ts"])
    return out


def render(found: NodeStatus) -> str:
    lines = [f"ugem {found.version}   {times.rfc3339(found.now)}"]
    lines += _workers(found)
    lines.append(f"queue        {_counts(found.queue)}")
    lines.append(f"connections  {_counts(found.connections)}")
    opened = "unknown" if found.open_incidents is None else str(found.open_incidents)
    lines.append(f"incidents    {opened} open")
    if found.recent:
        lines.append("recent warnings and errors (newest first):")
        for ev in found.recent:
            lines.append(f"  {times.rfc3339(ev.ts)} w{ev.worker} {ev.level} {ev.event} {ev.detail}")
    for problem in found.problems:
        lines.append(f"problem: {problem}")
    return "\n".join(lines)


def _workers(found: NodeStatus) -> list[str]:
    if not found.workers:
        return ["workers      none running (no status file in the data directory's run/)"]
    out = []
    for w in found.workers:
        if not w.running:
            out.append(f"worker {w.worker}     not running (pid {w.pid}, last seen "
                       f"{times.rfc3339(w.written_at)})")  # fmt: skip
            continue
        uptime = _duration(found.now - w.started_at)
        out.append(
            f"worker {w.worker}     pid {w.pid}, up {uptime}, smtp {w.smtp}, "
            f"admin {w.admin or '-'}: {w.status}" + (f" ({w.reason})" if w.reason != "ok" else "")
        )
    return out


def _counts(counts: dict[str, int] | None) -> str:
    if counts is None:
        return "unknown"
    return ", ".join(f"{state} {n}" for state, n in counts.items()) or "none"


def _duration(seconds: float) -> str:
    s = max(0, int(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    return f"{days}d {hours}h {minutes}m" if days else f"{hours}h {minutes}m {s}s"
