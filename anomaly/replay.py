"""Run the detector over a trace in trace time and yield its actions.

`replay(events)` feeds each event to a `Detector` (a fresh one unless given)
and yields every `Verdict` as it happens; `action_line(v)` is the JSON object
TRACE-FORMAT.md asks a replay to print. Errors are those of the reader
(anomaly.trace raises UsageError for a bad file).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from anomaly.detector import Detector, Verdict
from anomaly.trace import Accepted, TraceEvent


def replay(events: Iterable[TraceEvent], detector: Detector | None = None) -> Iterator[Verdict]:
    det = detector if detector is not None else Detector()
    on_accepted, on_outcome = det.accepted, det.outcome
    for e in events:
        if isinstance(e, Accepted):
            verdict = on_accepted(e.ts, e.connection, e.sender, e.rcpts)
        else:
            verdict = on_outcome(e.ts, e.connection, e.kind, e.code)
        if verdict is not None:
            yield verdict


def action_line(verdict: Verdict) -> dict[str, Any]:
    return {
        "ts": verdict.ts,
        "connection": verdict.connection,
        "action": verdict.action,
        "reason": verdict.reason,
    }
