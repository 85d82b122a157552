"""The workers of a `ugem serve --workers N` node as tests see them.

Worker 0 listens on `[admin] listen` (the node's one admin listener); every
other worker serves its admin app on a private loopback port that it writes,
with its pid, in its status file (`<data_dir>/run/worker-<i>.json`,
`ugem.core.runtime`). `worker_admins(config)` reads the running workers'
addresses from those files, worker 0 first; `worker_pid(admin)` asks one
worker's /readyz for its pid (None while it does not answer);
`workers_ready(node, config, n)` waits until the node answers and `n`
workers run and answer, and gives their addresses.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

from tests.support.node import NodeProcess
from tests.support.waiting import eventually_read
from ugem.core.config import Config
from ugem.core.runtime import RUN_DIR, WorkerState, read_workers


def running_workers(config: Config) -> list[WorkerState]:
    found = read_workers(config.data_path / RUN_DIR, time.time()).found
    return [w for w in found if w.running]


def worker_admins(config: Config) -> list[str]:
    """The running workers' admin listeners, by worker index (worker 0's is the node's)."""
    return [w.admin for w in running_workers(config)]


def worker_pid(admin: str) -> int | None:
    """The pid a worker's admin listener reports, None while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{admin}/readyz", timeout=1) as resp:
            return int(json.load(resp)["pid"]) if resp.status == 200 else None
    except OSError:
        return None


async def workers_ready(node: NodeProcess, config: Config, count: int = 2) -> list[str]:
    """Wait until the node answers and `count` workers run and answer; their admins."""
    await node.wait_ready()

    async def answering() -> list[str]:
        admins = worker_admins(config)
        pids = await asyncio.gather(*(asyncio.to_thread(worker_pid, a) for a in admins))
        return admins if len(admins) == count and all(pids) else []

    return await eventually_read(answering, bool, 30, f"{count} workers ready")
