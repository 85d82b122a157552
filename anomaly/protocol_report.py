"""The protocol's report: a run's results summed per set, and kept as JSON.

What: a `SetReport` (one set's `TraceResult`s, its calibration, its warnings) sums to
`Row`s: one per abuse kind (the simulator's order, then any other), one for normal
traffic (false suspensions, throttles outside incidents) and the total (`row`:
incidents detected, median and max time to detect, leaked recipients, the leak had a
live node's throttle held what it would (anomaly.evaluate's model, reported beside
the leak, never instead of it), throttles, the targets missed). A `Report` is a
run's sets and how it ran (`as_json`); `save_report` writes everything it holds and
`load_report` reads it back, to print again.

Promises: the per-kind rows and the normal-traffic row sum to the total (the medians
and maxima are over all incidents of the total); `load_report` gives back the report
`save_report` wrote. Failures: a report that cannot be written, or a file that is
not a saved report, raise UsageError.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from anomaly.protocol_design import TARGETS, Targets
from anomaly.protocol_judge import NORMAL, FalseSuspension, IncidentResult, TraceResult
from anomaly.simulate import KIND_NAMES
from ugem.core.errors import UsageError


@dataclass(frozen=True)
class Row:
    """One line of a table: an abuse kind, normal traffic, or a total."""

    label: str
    incidents: int
    detected: int
    suspended_before: int  # not detected: the connection was suspended before it began
    median_ttd: float | None
    max_ttd: float | None
    leaked: int
    leaked_of: int
    false_suspensions: int
    throttles: int
    held: int = 0  # of the leaked, deferred for good by a throttle (anomaly.evaluate's model)

    @property
    def leaked_pct(self) -> float:
        return round(100.0 * self.leaked / self.leaked_of, 2) if self.leaked_of else 0.0

    @property
    def throttled_pct(self) -> float:
        """The leak had a live node's throttle held what it would have (a model)."""
        kept = self.leaked - self.held
        return round(100.0 * kept / self.leaked_of, 2) if self.leaked_of else 0.0

    def misses(self, targets: Targets = TARGETS) -> tuple[str, ...]:
        """The targets this row misses (speed is the set's)."""
        out = []
        if self.detected < self.incidents:
            before = f" ({self.suspended_before} suspended before)" if self.suspended_before else ""
            out.append(f"{self.incidents - self.detected} undetected{before}")
        if self.median_ttd is not None and self.median_ttd > targets.median_ttd_s:
            out.append("median")
        if self.max_ttd is not None and self.max_ttd > targets.max_ttd_s:
            out.append("max")
        if self.leaked_pct > targets.leaked_pct:
            out.append("leak")
        if self.false_suspensions > targets.false_suspensions:
            out.append("false suspensions")
        return tuple(out)

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {
            "leaked_pct": self.leaked_pct,
            "throttled_pct": self.throttled_pct,
            "misses": list(self.misses()),
        }


def row(
    label: str,
    incidents: Sequence[IncidentResult],
    false_suspensions: int = 0,
    throttles: int = 0,
) -> Row:
    times = [i.time_to_detect for i in incidents if i.time_to_detect is not None]
    return Row(
        label,
        len(incidents),
        sum(i.detected for i in incidents),
        sum(i.suspended_before for i in incidents),
        statistics.median(times) if times else None,
        max(times) if times else None,
        sum(i.leaked for i in incidents),
        sum(i.leaked_of for i in incidents),
        false_suspensions,
        throttles,
        sum(i.held for i in incidents),
    )


@dataclass(frozen=True)
class SetReport:
    name: str
    title: str
    calibration: str
    tuning: tuple[str, ...]  # the traces the calibration may read (it is given them if it does)
    traces: tuple[TraceResult, ...]
    warnings: tuple[str, ...] = ()

    @property
    def incidents(self) -> list[IncidentResult]:
        return [i for t in self.traces for i in t.incidents]

    @property
    def false_suspensions(self) -> list[FalseSuspension]:
        return [f for t in self.traces for f in t.false_suspensions]

    @property
    def throttles(self) -> list[str]:
        return [k for t in self.traces for k in t.throttles]

    def rows(self) -> list[Row]:
        """One row per abuse kind (the simulator's order, then any other), then normal traffic."""
        incidents, throttles = self.incidents, self.throttles
        seen = {i.kind for i in incidents} | (set(throttles) - {NORMAL})
        kinds = [k for k in KIND_NAMES if k in seen] + sorted(seen - set(KIND_NAMES))
        rows = [row(k, [i for i in incidents if i.kind == k], 0, throttles.count(k)) for k in kinds]
        rows.append(row(NORMAL, [], len(self.false_suspensions), throttles.count(NORMAL)))
        return rows

    def total(self) -> Row:
        return row("total", self.incidents, len(self.false_suspensions), len(self.throttles))

    @property
    def events(self) -> int:
        return sum(t.events for t in self.traces)

    @property
    def replay_s(self) -> float:
        return sum(t.replay_s for t in self.traces)

    @property
    def events_per_s(self) -> float:
        return self.events / self.replay_s if self.replay_s > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "calibration": self.calibration,
            "tuning": list(self.tuning),
            "traces": [
                {
                    "name": t.name,
                    "spec": t.spec,
                    "events": t.events,
                    "replay_s": round(t.replay_s, 3),
                    "incidents": len(t.incidents),
                    "detected": sum(i.detected for i in t.incidents),
                    "false_suspensions": len(t.false_suspensions),
                    "throttles": len(t.throttles),
                }
                for t in self.traces
            ],
            "kinds": [r.as_json() for r in self.rows()],
            "total": self.total().as_json(),
            "events": self.events,
            "replay_s": round(self.replay_s, 3),
            "events_per_s": round(self.events_per_s),
            "false_suspensions": [asdict(f) for f in self.false_suspensions],
            "undetected": [asdict(i) for i in self.incidents if not i.detected],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class Report:
    method: str
    sets: tuple[SetReport, ...]
    jobs: int
    cache: str
    started: str  # ISO time, UTC
    machine: str
    simulate_s: float
    evaluate_s: float
    detector: str = ""  # detector_digest() of the code judged

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "detector": self.detector,
            "started": self.started,
            "machine": self.machine,
            "jobs": self.jobs,
            "cache": self.cache,
            "simulate_s": round(self.simulate_s, 1),
            "evaluate_s": round(self.evaluate_s, 1),
            "targets": asdict(TARGETS),
            "sets": [s.as_json() for s in self.sets],
        }


def save_report(report: Report, path: Path) -> None:
    """Write everything `report` holds, as JSON, for `load_report` (UsageError if it cannot)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(report), ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--save: cannot write {path}: {exc}") from exc


def load_report(path: Path) -> Report:
    """A report `save_report` wrote; UsageError for a file that is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        sets = tuple(_set_from_json(s) for s in data["sets"])
        return Report(**data | {"sets": sets})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--load: {path} is not a saved report: {exc!r}") from exc


def _set_from_json(s: dict[str, Any]) -> SetReport:
    traces = tuple(
        TraceResult(
            t["name"],
            t["spec"],
            t["events"],
            t["replay_s"],
            tuple(IncidentResult(**i) for i in t["incidents"]),
            tuple(
                FalseSuspension(
                    **f | {"findings": tuple(f["findings"]), "context": tuple(f["context"])}
                )
                for f in t["false_suspensions"]
            ),
            tuple(t["throttles"]),
            tuple((str(k), float(v)) for k, v in t.get("settings", ())),  # older reports: none
        )
        for t in s["traces"]
    )
    return SetReport(
        s["name"], s["title"], s["calibration"], tuple(s["tuning"]), traces, tuple(s["warnings"])
    )
