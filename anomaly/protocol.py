"""A protocol against fitting ourselves: fixed seed sets, judged the same way every time.

What: the traces a detector is judged on, fixed here once (`DESIGN`), and the
report of a run over them (`run` -> `Report`; `render_text`,
`render_markdown`, `Report.as_json`; `save_report` and `load_report` keep a
run to print again). The sets:

- `tune`: TUNING seeds 1, 2, 3 (150 connections x 28 days, 80 x 7, 120 x 21,
  each from another start date). Developers may look at these and tune on
  them; their numbers are in-sample and say little about unseen traffic.
- `holdout`: HELD-OUT seeds 9016, 9017, 9018, the same three shapes (the
  issue's held-back traces) from other start dates (other holidays). NOBODY
  TUNES ON THESE: no threshold, rule or calibration may be chosen by looking
  at their traces or their numbers. A change is judged on them once, after it
  was tuned elsewhere; when they have been looked at too often, new seeds
  replace them rather than anyone tuning to them (9001-9003 were retired so,
  after the detector's backlog fix was studied on them; 9004-9006 after two
  looks at the score's first version; 9007-9009 after the change-point
  statistic was judged on them and their misses were read to choose the next
  evidence; 9010-9012 after two looks, at the new-foreign-domains evidence and
  at the backlog change; 9013-9015 after the strangers evidence was judged on
  them once: `Design.retired`). Nothing has been judged on 9016-9018 yet.
- `loko` (leave one kind out): for each kind of abuse K, a tuning trace made
  with `--exclude-kinds K` (the only trace a calibration sees for K) and an
  evaluation trace made with `--kinds K` only (about 24 incidents of K), on
  seeds of their own (7101.., 7201..), disjoint from every other set: how the
  detector does on a kind it was never tuned on.
- `public`: the public weeks (../shared/anomaly/public/week-a and week-b): the
  regression check (they were tuned on in issue 5; their numbers must hold).

The detector is judged through a `Method`: `calibrate(tuning traces) ->
DetectorSettings` and `evaluate(settings, trace, jobs) -> TraceResult`.
`CALIBRATED` chooses the detector's thresholds on the tuning traces
(anomaly.calibrate; `reads_tuning=True`): for `holdout`, `tune` and
`public` it sees the TUNING traces, for `loko` K only the `--exclude-kinds
K` trace. `CURRENT` judges the default thresholds of anomaly/detector.py
without reading any tuning trace (then not even generated).

Simulated traces are made on demand into a cache directory by the
simulator's Python API (anomaly.simulate), in up to `jobs` processes at once,
under a key made of their exact simulate options and a digest of the
simulator's code (`cache_key`): a cached trace is reused only when both
match. A trace is complete once its `KEY.args.json` is written (last).

The scoring is anomaly.evaluate's (TRACE-FORMAT.md's rules). On top of it,
per set: rows per abuse kind (incidents detected, median and max time to
detect, leaked recipients, the leak had a live node's throttle held what it
would (anomaly.evaluate's model, reported beside the leak, never instead of
it), throttles during its incidents) and a row for
normal traffic (false suspensions, throttles outside incidents) that add up
to the set's total; each false suspension with its findings, the silence of
the connection that ended in the hour before it (an outage's backlog looks
so) and, for a simulated trace, what the simulator's plan had that
organisation doing then (outage backlog, deadline surge, newsletter, ...);
the replay's speed (events over the wall time of `replay_file`, reading
included, start-up excluded). An incident whose connection was suspended
before it began is not detected (TRACE-FORMAT.md) and is counted apart as
"suspended before". `TARGETS` are the issue's. The text and JSON list every
incident not detected; the markdown leaves that list out (the rows count them).

The parts, one job each: anomaly.protocol_design (the sets, the traces' keys, the
digests), anomaly.protocol_cache (the simulated traces, made on demand),
anomaly.protocol_judge (the methods; one trace judged), anomaly.protocol_report
(rows, sets, reports and their JSON), anomaly.protocol_render (text and markdown).
This module runs them (`run`) and is their public face: import from here.

Promises: the same design, options and detector give the same numbers (the
speeds aside); the per-kind rows and the normal-traffic row sum to the total
(the medians and maxima are over all incidents of the total). Failures: a
trace or labels file that cannot be read or written, a missing public week,
an unknown set name or settings the detector cannot take raise UsageError.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence

from anomaly.protocol_cache import DEFAULT_CACHE, Cache, TraceFiles, prepare
from anomaly.protocol_design import (
    DESIGN,
    PUBLIC_DIR,
    SET_NAMES,
    TARGETS,
    Design,
    SetPlan,
    Shape,
    Targets,
    TraceRef,
    Unit,
    cache_key,
    detector_digest,
    parse_sets,
    simulate_args,
    simulate_command,
    simulator_digest,
)
from anomaly.protocol_judge import (
    CALIBRATED,
    CURRENT,
    DEFAULT_SETTINGS,
    NORMAL,
    SILENCE_RECENT_S,
    SILENCE_S,
    Calibrate,
    DetectorSettings,
    Evaluate,
    FalseSuspension,
    IncidentResult,
    Method,
    TraceResult,
    calibrated,
    evaluate_detector,
    findings,
    fixed_rules,
    judged,
    thresholds_of,
)
from anomaly.protocol_render import (
    duration,
    false_table,
    kind_table,
    markdown_table,
    render_markdown,
    render_text,
    targets_table,
    text_table,
    trace_table,
    undetected_table,
)
from anomaly.protocol_report import Report, Row, SetReport, load_report, row, save_report

__all__ = [
    "CALIBRATED",
    "CURRENT",
    "DEFAULT_CACHE",
    "DEFAULT_SETTINGS",
    "DESIGN",
    "LOKO_MIN_INCIDENTS",
    "NORMAL",
    "PUBLIC_DIR",
    "SET_NAMES",
    "SILENCE_RECENT_S",
    "SILENCE_S",
    "TARGETS",
    "Cache",
    "Calibrate",
    "Design",
    "DetectorSettings",
    "Evaluate",
    "FalseSuspension",
    "IncidentResult",
    "Method",
    "Report",
    "Row",
    "SetPlan",
    "SetReport",
    "Shape",
    "Targets",
    "TraceFiles",
    "TraceRef",
    "TraceResult",
    "Unit",
    "cache_key",
    "calibrated",
    "detector_digest",
    "duration",
    "evaluate_detector",
    "false_table",
    "findings",
    "fixed_rules",
    "judged",
    "kind_table",
    "load_report",
    "machine",
    "markdown_table",
    "parse_sets",
    "prepare",
    "render_markdown",
    "render_text",
    "row",
    "run",
    "save_report",
    "simulate_args",
    "simulate_command",
    "simulator_digest",
    "stderr_progress",
    "targets_table",
    "text_table",
    "thresholds_of",
    "trace_table",
    "undetected_table",
]

LOKO_MIN_INCIDENTS = 8


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.machine()}, {cores} cores, Python {platform.python_version()}"


def run(
    sets: Sequence[str],
    cache: Cache,
    jobs: int,
    method: Method = CURRENT,
    design: Design = DESIGN,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Simulate what is missing, calibrate and judge `method` on each set; see the docstring."""
    say = progress or (lambda _: None)
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    code = detector_digest()
    plans = [design.plan(name) for name in sets]
    needed = [r for p in plans for u in p.units for r in u.evaluation]
    if method.reads_tuning:
        needed += [r for p in plans for u in p.units for r in u.tuning]
    for ref in needed:
        if ref.recorded is not None:
            cache.files(ref)  # a missing public week fails now, not after the simulations
    simulate_s = prepare(needed, cache, jobs, say)
    began = time.perf_counter()
    calibrated: dict[tuple[TraceRef, ...], DetectorSettings] = {}
    reports = []
    for p in plans:
        results: list[TraceResult] = []
        tuning: list[str] = []
        warnings: list[str] = []
        for unit in p.units:
            if unit.tuning not in calibrated:
                given = [cache.files(r) for r in unit.tuning] if method.reads_tuning else []
                calibrated[unit.tuning] = method.calibrate(given)
            settings = calibrated[unit.tuning]
            tuning += [r.name for r in unit.tuning if r.name not in tuning]
            for ref in unit.evaluation:
                result = method.evaluate(settings, cache.files(ref), jobs)
                result = dataclasses.replace(result, settings=settings.values)
                results.append(result)
                warnings += _unit_warnings(unit, result)
                say(_progress_line(p.name, result))
        used = ", ".join(sorted({calibrated[unit.tuning].name for unit in p.units}))
        read = "" if method.reads_tuning else " (reads no trace: its tuning traces are not made)"
        calibration = f"{method.name}: {used}{read}"
        reports.append(
            SetReport(p.name, p.title, calibration, tuple(tuning), tuple(results), tuple(warnings))
        )
    return Report(
        method.name,
        tuple(reports),
        jobs,
        str(cache.root),
        started,
        machine(),
        simulate_s,
        time.perf_counter() - began,
        code,
    )


def _unit_warnings(unit: Unit, result: TraceResult) -> list[str]:
    if not unit.kind:
        return []
    out = []
    of_kind = sum(i.kind == unit.kind for i in result.incidents)
    if of_kind < LOKO_MIN_INCIDENTS:
        out.append(f"{result.name}: {of_kind} incidents of {unit.kind}, fewer than asked")
    others = sorted({i.kind for i in result.incidents} - {unit.kind})
    if others:
        out.append(f"{result.name}: incidents of other kinds: {', '.join(others)}")
    return out


def _progress_line(set_name: str, r: TraceResult) -> str:
    detected = sum(i.detected for i in r.incidents)
    speed = r.events / r.replay_s if r.replay_s > 0 else 0.0
    return (
        f"{set_name}: {r.name}: {detected} of {len(r.incidents)} detected,"
        f" {len(r.false_suspensions)} false suspensions; replay {r.events:,} events"
        f" in {r.replay_s:.1f} s ({speed:,.0f} events/s)"
    )


def stderr_progress(line: str) -> None:
    print(f"[protocol {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)
