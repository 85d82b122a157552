"""Choose the detector's thresholds on tuning traces, by a rule written down here.

`record(path)` replays one labelled trace with thresholds nobody reaches and
keeps, for each connection, every check whose score reaches `LEAST` (the
detector's observer): (ts, score, corroboration). `choose(traces)` then
judges every pair of a suspend threshold and a corroboration of the grids
(`SUSPEND_GRID`, `CORROBORATION_GRID`) on those records by the scoring rules
of TRACE-FORMAT.md (a connection's first suspension counts; detected within
an incident or 600 s after it; false outside every incident and its hour of
trailing outcomes) and keeps:

1. the fewest false suspensions on the tuning traces, then the fewest with
   the threshold `MARGIN` lower (traffic not seen has more variety than the
   traffic tuned on: the margin is the room left for it); where some pair
   has none, that is: only pairs with none, even `MARGIN` lower;
2. of those, the pair that detects most, then the faster median time to
   detect, then the higher threshold.

The throttle threshold is the lowest of `THROTTLE_GRID` (at most the suspend
threshold) at which normal traffic is throttled at most `THROTTLE_BUDGET`
times per 100 connection-days (a throttle of normal mail defers it; a few a
month across the gateway is the price of catching abuse early). `calibrate`
does all of it for anomaly.protocol and returns its `DetectorSettings`, with
the reason written in the name. Records of a 150-connection month hold a few
thousand checks. Errors: those of the trace reader (UsageError).
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import statistics
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from anomaly.detector import Detector, Thresholds
from anomaly.evaluate import DETECT_GRACE_S, OUTCOME_TRAIL_S, Incident, load_labels
from anomaly.replay import replay
from anomaly.score import Assessment
from anomaly.trace_reader import read_trace

LEAST = 2.0  # checks scoring less are not kept
SUSPEND_GRID = (5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0, 14.0, 16.0, 20.0, 25.0, 30.0, 40.0)
CORROBORATION_GRID = (1.0, 2.0, 3.0, 4.0)
THROTTLE_GRID = (3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0)
MARGIN = 1.0  # decades below the chosen threshold that must still be clean
THROTTLE_BUDGET = 1.0  # throttles of normal traffic per 100 connection-days
_NEVER = float("inf")

Check = tuple[float, float, float]  # ts, score, corroboration


@dataclass(frozen=True)
class Recorded:
    """One tuning trace's checks and labels."""

    checks: dict[str, list[Check]]
    incidents: tuple[Incident, ...]
    connection_days: float


@dataclass(frozen=True)
class Choice:
    thresholds: Thresholds
    detected: int
    incidents: int
    why: str


def record(trace: Path, labels: Path) -> Recorded:
    """The checks of a replay of `trace` that reach LEAST, by connection, and its labels."""
    checks: dict[str, list[Check]] = {}

    def observe(ts: float, connection: str, found: Assessment) -> None:
        if found.score >= LEAST:
            checks.setdefault(connection, []).append((ts, found.score, found.corroboration))

    detector = Detector(thresholds=Thresholds(_NEVER, _NEVER), observer=observe)
    gc.disable()
    try:
        for _ in replay(read_trace(trace), detector):
            pass
    finally:
        gc.enable()
    incidents = tuple(load_labels(labels))
    return Recorded(checks, incidents, _connection_days(labels, checks))


def _connection_days(labels: Path, checks: dict[str, list[Check]]) -> float:
    data = json.loads(labels.read_text())
    start, end = (float(x) for x in data["period"])
    connections = len(data.get("connections") or checks)
    return max(1.0, connections * (end - start) / 86_400.0)


def record_all(traces: Sequence[tuple[Path, Path]], jobs: int) -> list[Recorded]:
    """`record` of each (trace, labels), up to `jobs` at once."""
    if jobs <= 1 or len(traces) == 1:
        return [record(t, lab) for t, lab in traces]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(min(jobs, len(traces)), mp_context=context) as pool:
        futures = [pool.submit(record, t, lab) for t, lab in traces]
        return [f.result() for f in futures]


def _first(checks: list[Check], suspend: float, corroborated: float) -> float | None:
    for ts, score, corroboration in checks:
        if score >= suspend and corroboration >= corroborated:
            return ts
    return None


def _covered(ts: float, connection: str, incidents: Sequence[Incident]) -> bool:
    return any(
        i.connection == connection and i.start <= ts <= i.end + OUTCOME_TRAIL_S for i in incidents
    )


def judge(
    traces: Sequence[Recorded], suspend: float, corroborated: float
) -> tuple[int, int, list[float]]:
    """(false suspensions, incidents detected, times to detect) of a suspend rule."""
    false, detected, ttd = 0, 0, []
    for t in traces:
        first = {
            c: ts
            for c, checks in t.checks.items()
            if (ts := _first(checks, suspend, corroborated)) is not None
        }
        false += sum(1 for c, ts in first.items() if not _covered(ts, c, t.incidents))
        for i in t.incidents:
            ts = first.get(i.connection)
            if ts is not None and i.start <= ts <= i.end + DETECT_GRACE_S:
                detected += 1
                ttd.append(ts - i.start)
    return false, detected, ttd


def normal_throttles(traces: Sequence[Recorded], throttle: float) -> float:
    """Throttles of normal traffic per 100 connection-days at `throttle`: connection-hours
    outside every incident with a check at the threshold."""
    hours, days = 0, 0.0
    for t in traces:
        days += t.connection_days
        for c, checks in t.checks.items():
            hit = {
                int(ts // 3600)
                for ts, score, _ in checks
                if score >= throttle and not _covered(ts, c, t.incidents)
            }
            hours += len(hit)
    return 100.0 * hours / days if days else 0.0


def choose(traces: Sequence[Recorded]) -> Choice:
    """The thresholds by the rule of the module docstring."""
    incidents = sum(len(t.incidents) for t in traces)
    best: tuple[tuple[int, int, int, float, float], float, float, list[float], int] | None = None
    for suspend in SUSPEND_GRID:
        for corroborated in CORROBORATION_GRID:
            false, detected, ttd = judge(traces, suspend, corroborated)
            lower = judge(traces, suspend - MARGIN, corroborated)[0]
            median = statistics.median(ttd) if ttd else _NEVER
            key = (-false, -lower, detected, -median, suspend)
            if best is None or key > best[0]:
                best = key, suspend, corroborated, ttd, false
    assert best is not None  # the grids are not empty
    _, suspend, corroborated, ttd, false = best
    if false:
        clean = f"no pair of the grids was clean: {false} false suspension(s) on the tuning traces"
    else:
        clean = f"no false suspension on the tuning traces, none at {suspend - MARGIN:g} either"
    throttle = next(
        (
            t
            for t in THROTTLE_GRID
            if t <= suspend and normal_throttles(traces, t) <= THROTTLE_BUDGET
        ),
        suspend,
    )
    rate = normal_throttles(traces, throttle)
    detected = len(ttd)
    why = (
        f"suspend at {suspend:g} with {corroborated:g} beyond volume and new recipients ({clean};"
        f" detects {detected}/{incidents} of the tuning incidents), throttle at {throttle:g}"
        f" ({rate:.2f} throttles of normal traffic per 100 connection-days)"
    )
    return Choice(Thresholds(throttle, suspend, corroborated), detected, incidents, why)
