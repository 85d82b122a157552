"""Run the detector over a trace in trace time and yield its actions.

`replay(events)` feeds each event to a `Detector` (a fresh one unless given)
and yields every `Verdict` as it happens; `action_line(v)` is the JSON object
TRACE-FORMAT.md asks a replay to print.

`replay_file(path, jobs)` replays a trace file with its connections split
across `jobs` processes. The detector keeps nothing across connections, so
each process reads the whole file but feeds only the events of its own share
of the connections to its own detector, and the verdicts are merged back by
the number of the event that caused each: the same verdicts in the same order
as one process gives, whatever `jobs`. The shares are balanced on the events
of the first blocks of the file (which every process reads alike); a
connection first seen later goes by a hash of its name. This process runs the
first share and forked workers the others; where fork is not available
everything runs here, and the share of a worker that was lost is run again
here. Errors are those of the reader (anomaly.trace raises UsageError for a
bad file), raised here.
"""

from __future__ import annotations

import heapq
import multiprocessing
import os
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import chain, islice
from operator import itemgetter
from pathlib import Path
from typing import Any

from anomaly.detector import Detector, Verdict
from anomaly.trace import Accepted, TraceEvent, TraceStats, read_blocks

_Found = list[tuple[int, Verdict]]  # (number of the event in the trace, its verdict)
_BALANCE_BLOCKS = 4  # blocks of lines (about 4 MB) the shares are balanced on


def replay(events: Iterable[TraceEvent], detector: Detector | None = None) -> Iterator[Verdict]:
    for _, verdict in _verdicts(events, detector if detector is not None else Detector()):
        yield verdict


def _verdicts(
    events: Iterable[TraceEvent], det: Detector, keep: Callable[[str], bool] | None = None
) -> Iterator[tuple[int, Verdict]]:
    """(number of the event, verdict) for each verdict, feeding `det` only the events of
    connections `keep` says yes to (all without it)."""
    accepted, outcome = det.accepted, det.outcome
    kept: dict[str, bool] = {}
    for number, e in enumerate(events):
        connection = e.connection
        if keep is not None:
            mine = kept.get(connection)
            if mine is None:
                mine = kept[connection] = keep(connection)
            if not mine:
                continue
        if type(e) is Accepted:  # isinstance costs more on a msgspec Struct; mypy needs it
            verdict = accepted(e.ts, connection, e.sender, e.rcpts)
        else:
            verdict = outcome(e.ts, connection, e.kind, e.code)  # type: ignore[union-attr]
        if verdict is not None:
            yield number, verdict


def balance(connections: Iterable[str], jobs: int) -> dict[str, int]:
    """Each connection's share: the busiest first, each to the share with the fewest events
    so far (ties to the lowest share, then by name), so the same events give the same
    shares in every process."""
    load = [0] * jobs
    shares: dict[str, int] = {}
    for connection, n in sorted(Counter(connections).items(), key=lambda c: (-c[1], c[0])):
        shares[connection] = share = load.index(min(load))
        load[share] += n
    return shares


def share_of(connection: str, jobs: int) -> int:
    """The share of a connection `balance` did not see: a hash of its name, alike in every
    process (unlike `hash`)."""
    return zlib.crc32(connection.encode()) % jobs


def _replay_share(path: Path, share: int, jobs: int, stats: TraceStats | None = None) -> _Found:
    """The numbered verdicts on the connections of one share of `jobs`."""
    blocks = read_blocks(path, stats, warn=share == 0)
    head = list(islice(blocks, _BALANCE_BLOCKS))
    events = chain.from_iterable(chain(head, blocks))
    if jobs == 1:
        return list(_verdicts(events, Detector()))
    shares = balance((e.connection for block in head for e in block), jobs)

    def keep(connection: str) -> bool:
        return shares.get(connection, share_of(connection, jobs)) == share

    return list(_verdicts(events, Detector(), keep))


def default_jobs() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def replay_file(path: Path, jobs: int = 1, stats: TraceStats | None = None) -> list[Verdict]:
    """The verdicts of a replay of the trace at `path` in `jobs` processes, in trace order;
    see the module docstring. `stats` receives the reader's statistics."""
    if jobs <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [v for _, v in _replay_share(path, 0, 1, stats)]
    with ProcessPoolExecutor(jobs - 1, mp_context=multiprocessing.get_context("fork")) as pool:
        workers = [pool.submit(_replay_share, path, share, jobs) for share in range(1, jobs)]
        shares = [_replay_share(path, 0, jobs, stats)]
        shares += [_worker_result(w, path, share, jobs) for share, w in enumerate(workers, 1)]
    return [v for _, v in heapq.merge(*shares, key=itemgetter(0))]


def _worker_result(worker: Future[_Found], path: Path, share: int, jobs: int) -> _Found:
    """A worker's verdicts, or its share run here if the worker was lost."""
    try:
        return worker.result()
    except BrokenProcessPool:
        return _replay_share(path, share, jobs)


def action_line(verdict: Verdict) -> dict[str, Any]:
    return {
        "ts": verdict.ts,
        "connection": verdict.connection,
        "action": verdict.action,
        "reason": verdict.reason,
    }
