"""Run the detector over a trace in trace time and yield its actions.

`replay(events)` feeds each event to a `Detector` (a fresh one unless given)
and yields every `Verdict` as it happens; `action_line(v)` is the JSON object
TRACE-FORMAT.md asks a replay to print (a throttle's also says its cap,
`cap_5m`: recipients per 5 minutes).

`replay_file(path, jobs)` replays a trace file with its connections split
across `jobs` processes. The detector keeps nothing across connections, so
each process reads the whole file but feeds only the events of its own share
of the connections to its own detector, and the verdicts are merged back by
the number of the event that caused each: the same verdicts in the same order
as one process gives, whatever `jobs`. The shares are balanced on the first
events of the file (the blocks holding `_BALANCE_EVENTS`, which every process
reads alike); a connection first seen later goes by a hash of its name. This
process reads those first blocks and loads the working-day calendar of their
year before it forks the workers (so they inherit it rather than each load
it), then runs the first share; forked workers run the others; where fork is
not available everything runs here, and the share of a worker that was lost
is run again here. Errors are those of the reader (anomaly.trace_reader raises
UsageError for a bad file), raised here.
"""

from __future__ import annotations

import contextlib
import heapq
import multiprocessing
import os
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

from anomaly.detector import DEFAULT_THRESHOLDS, THROTTLE, Detector, Thresholds, Verdict
from anomaly.trace_reader import Accepted, TraceEvent, TraceStats, read_blocks
from ugem.core.workdays import preload

_Found = list[tuple[int, Verdict]]  # (number of the event in the trace, its verdict)
_BALANCE_EVENTS = 25_000  # events the shares are balanced on (about 4 MB of lines)
_Blocks = Iterator[list[TraceEvent]]


def replay(events: Iterable[TraceEvent], detector: Detector | None = None) -> Iterator[Verdict]:
    for _, verdict in _feed(events, detector if detector is not None else Detector()):
        yield verdict


def _feed(events: Iterable[TraceEvent], det: Detector) -> Iterator[tuple[TraceEvent, Verdict]]:
    """(event, verdict) for each verdict of `det` fed `events`."""
    accepted, outcome = det.accepted, det.outcome
    for e in events:
        if type(e) is Accepted:  # isinstance costs more on a msgspec Struct; mypy needs it
            verdict = accepted(e.ts, e.connection, e.sender, e.rcpts, e.ip, e.size)
        else:
            verdict = outcome(e.ts, e.connection, e.kind, e.code, e.rcpt)  # type: ignore[union-attr]
        if verdict is not None:
            yield e, verdict


def _verdicts(
    blocks: Iterable[list[TraceEvent]],
    det: Detector,
    mine: Callable[[list[TraceEvent]], list[TraceEvent]] | None = None,
) -> _Found:
    """(number of the event in the trace, verdict) for each verdict, feeding `det` the events
    of each block that `mine` keeps (all without it). An event is numbered only when it
    gives a verdict (rare): by where it is in its block."""
    found: _Found = []
    first = 0  # the number of the block's first event
    for block in blocks:
        for e, verdict in _feed(block if mine is None else mine(block), det):
            found.append((first + next(i for i, x in enumerate(block) if x is e), verdict))
        first += len(block)
    return found


class _Share:
    """The events of one share's connections in a block (a callable for `_verdicts`)."""

    def __init__(self, shares: dict[str, int], share: int, jobs: int) -> None:
        self._mine = {connection: s == share for connection, s in shares.items()}
        self._share, self._jobs = share, jobs

    def __call__(self, block: list[TraceEvent]) -> list[TraceEvent]:
        mine = self._mine
        try:
            return [e for e in block if mine[e.connection]]
        except KeyError:  # a connection not seen before: place it, then filter again
            for e in block:
                if e.connection not in mine:
                    mine[e.connection] = share_of(e.connection, self._jobs) == self._share
            return [e for e in block if mine[e.connection]]


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


def _head(blocks: _Blocks) -> list[list[TraceEvent]]:
    """The first blocks of `blocks`, up to the one that holds the `_BALANCE_EVENTS`-th event."""
    head, seen = [], 0
    for block in blocks:
        head.append(block)
        seen += len(block)
        if seen >= _BALANCE_EVENTS:
            break
    return head


def _replay_share(
    path: Path,
    share: int,
    jobs: int,
    stats: TraceStats | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> _Found:
    """The numbered verdicts on the connections of one share of `jobs`."""
    blocks = read_blocks(path, stats, warn=share == 0)
    return _replay_blocks(_head(blocks), blocks, share, jobs, thresholds)


def _replay_blocks(
    head: list[list[TraceEvent]],
    blocks: _Blocks,
    share: int,
    jobs: int,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> _Found:
    """`_replay_share` on the trace's first blocks, read already, and the rest."""
    detector = Detector(thresholds=thresholds)
    if jobs == 1:
        return _verdicts(chain(head, blocks), detector)
    shares = balance((e.connection for block in head for e in block), jobs)
    return _verdicts(chain(head, blocks), detector, _Share(shares, share, jobs))


def default_jobs() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def replay_file(
    path: Path,
    jobs: int = 1,
    stats: TraceStats | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> list[Verdict]:
    """The verdicts of a replay of the trace at `path` in `jobs` processes, in trace order;
    see the module docstring. `stats` receives the reader's statistics; `thresholds` are
    the detector's."""
    if jobs <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [v for _, v in _replay_share(path, 0, 1, stats, thresholds)]
    blocks = read_blocks(path, stats)
    head = _head(blocks)
    _preload_calendar(head)
    with ProcessPoolExecutor(jobs - 1, mp_context=multiprocessing.get_context("fork")) as pool:
        workers = [
            pool.submit(_replay_share, path, share, jobs, None, thresholds)
            for share in range(1, jobs)
        ]
        shares = [_replay_blocks(head, blocks, 0, jobs, thresholds)]
        shares += [
            _worker_result(w, path, share, jobs, thresholds) for share, w in enumerate(workers, 1)
        ]
    return [v for _, v in heapq.merge(*shares, key=itemgetter(0))]


def _preload_calendar(head: list[list[TraceEvent]]) -> None:
    """Load the working-day calendar of the trace's first year now, before the fork, so that
    the workers inherit it; a time the calendar cannot place is left to the detector."""
    first = next((block[0].ts for block in head if block), None)
    if first is not None:
        with contextlib.suppress(ArithmeticError, ValueError, OSError):
            preload(first)


def _worker_result(
    worker: Future[_Found], path: Path, share: int, jobs: int, thresholds: Thresholds
) -> _Found:
    """A worker's verdicts, or its share run here if the worker was lost."""
    try:
        return worker.result()
    except BrokenProcessPool:
        return _replay_share(path, share, jobs, None, thresholds)


def action_line(verdict: Verdict) -> dict[str, Any]:
    return {
        "ts": verdict.ts,
        "connection": verdict.connection,
        "action": verdict.action,
        "reason": verdict.reason,
    } | ({"cap_5m": round(verdict.cap, 1)} if verdict.action == THROTTLE else {})
