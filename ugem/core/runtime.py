"""What a running node worker says about itself on disk, for `ugem status` and /v1/status.

Each worker of a node writes `<data_dir>/run/worker-<i>.json` at start and
every `INTERVAL` seconds (a temporary file renamed over it, so a reader never
sees half of one): its pid, when it started, the SMTP and admin addresses it
serves as bound (port 0 resolved), its readiness (ready, degraded or not
ready, with the reason) and the last `RECENT` log events at WARNING or above
(`RecentEvents`, a logging handler keeping a bounded ring; each event's
fields cut to `DETAIL` characters), and the answer to its last reload (when,
the keys applied, the keys that need a restart, or why the file was refused:
what `ugem reload` waits for). A clean stop removes the file.

`read_workers(dir, now)` gives every worker file's `WorkerState`: one whose
pid is not alive, or that was written more than `STALE` seconds ago, is
`running=False` (a worker killed -9, a node gone); one that cannot be read
or parsed is skipped and named in the answer's `unreadable`. Reading never
raises for what is in the directory; writing raises `OSError` to the caller
(the node logs it and tries again at the next interval).
"""

from __future__ import annotations

import collections
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

INTERVAL: Final = 5.0  # seconds between a worker's writes of its file
STALE: Final = 3 * INTERVAL + 5.0  # seconds after which an unrefreshed file is not running
RECENT: Final = 20  # log events kept per worker
DETAIL: Final = 300  # characters of an event's fields kept
RUN_DIR: Final = "run"


@dataclass(frozen=True)
class RecentEvent:
    ts: float
    level: str
    event: str
    detail: str  # the event's fields as compact JSON, cut to DETAIL characters
    worker: int = 0


@dataclass(frozen=True)
class WorkerState:
    worker: int
    pid: int
    version: str
    started_at: float
    written_at: float
    smtp: str  # host:port as bound
    admin: str  # host:port as bound ("" when the worker serves no admin listener)
    status: str  # ready, degraded, not ready, draining
    reason: str
    recent: tuple[RecentEvent, ...] = ()
    reload: dict[str, Any] | None = None  # the last reload's answer (ugem.reload.ReloadResult)
    running: bool = True  # set by the reader: pid alive and the file fresh


@dataclass(frozen=True)
class Workers:
    found: list[WorkerState] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # file names that could not be read


class RecentEvents(logging.Handler):
    """Keeps the last `RECENT` records at WARNING or above of this process."""

    def __init__(self, size: int = RECENT) -> None:
        super().__init__(logging.WARNING)
        self._ring: collections.deque[RecentEvent] = collections.deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = getattr(record, "fields", {})
            detail = json.dumps(fields, default=str, ensure_ascii=False)[:DETAIL]
            name = getattr(record, "event", None) or record.getMessage()
            self._ring.append(RecentEvent(record.created, record.levelname.lower(), name, detail))
        except Exception:  # a log handler never raises into the code that logs
            self.handleError(record)

    def events(self) -> tuple[RecentEvent, ...]:
        return tuple(self._ring)


def worker_path(run_dir: Path, worker: int) -> Path:
    return run_dir / f"worker-{worker}.json"


def write_worker(run_dir: Path, state: WorkerState) -> None:
    """Write `state` as worker `state.worker`'s file, atomically; OSError on failure."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = worker_path(run_dir, state.worker)
    temporary = path.with_suffix(".tmp")
    body = asdict(state)
    del body["running"]
    temporary.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, path)


def remove_worker(run_dir: Path, worker: int) -> None:
    """A clean stop: the worker's file goes (nothing said when it is not there)."""
    worker_path(run_dir, worker).unlink(missing_ok=True)


def read_workers(run_dir: Path, now: float) -> Workers:
    """Every worker file in `run_dir`, by worker number; see the module docstring."""
    out = Workers()
    if not run_dir.is_dir():
        return out
    for path in sorted(run_dir.glob("worker-*.json")):
        try:
            state = _parse(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError):
            out.unreadable.append(path.name)
            continue
        running = _alive(state.pid) and now - state.written_at <= STALE
        out.found.append(_replace_running(state, running))
    out.found.sort(key=lambda w: w.worker)
    return out


def _parse(data: dict[str, Any]) -> WorkerState:
    recent = tuple(RecentEvent(**e) for e in data.get("recent", ()))
    fields = {k: data[k] for k in WorkerState.__dataclass_fields__ if k in data}
    fields.pop("running", None)
    return WorkerState(**(fields | {"recent": recent}))


def _replace_running(state: WorkerState, running: bool) -> WorkerState:
    recent = tuple(RecentEvent(**(asdict(e) | {"worker": state.worker})) for e in state.recent)
    return WorkerState(**(asdict(state) | {"running": running, "recent": recent}))


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
