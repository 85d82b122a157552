"""Score a replay's actions against a labelled trace, by the rules of TRACE-FORMAT.md.

`score(labels, actions, accepted)` takes the labels (`load_labels`), the
actions a replay printed (`Verdict`s) and the trace's events (only `accepted`
ones are used), and returns a `Score`: per incident, detected or not, time to
detect and leaked recipients; false suspensions; throttles; totals. Only a
connection's first `suspend` counts. Detected: that suspension falls in
[start, end + 600 s]. Leaked: recipients of the connection's accepted
messages from `start` up to the suspension, or to `end` where none came in
time; none when it was already suspended before `start` (not detected). A
false suspension is a first `suspend` outside every [start, end + 3600 s] of
its connection. A labels file that cannot be read raises UsageError.

Held (beside leaked, not in TRACE-FORMAT.md): of the leaked recipients, those
a live node's throttle would have deferred and never delivered. While a
connection is throttled (from a `throttle` to its `lift` or first `suspend`),
a message is deferred when the recipients let through in the last 5 minutes
reached the throttle's `cap` (ugem.core.throttle, the relay's rule at MAIL FROM);
what a throttle deferred counts as held only if it ended in the suspension
(or never ended): after a lift the sender's queue would deliver it. A model,
and an optimistic one: the trace cannot say how the detector would have
judged without the deferred messages' outcomes, or when the sender retries.
"""

from __future__ import annotations

import json
import statistics
from collections import deque
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anomaly.detector import Verdict
from anomaly.trace_reader import Accepted, TraceEvent
from ugem.core.errors import UsageError

DETECT_GRACE_S = 600.0
OUTCOME_TRAIL_S = 3600.0
THROTTLE_WINDOW_S = 300.0  # the window a throttled connection's cap counts (ugem.core.throttle)


@dataclass(frozen=True, slots=True)
class Incident:
    connection: str
    kind: str
    start: float
    end: float


@dataclass
class IncidentScore:
    incident: Incident
    detected: bool
    time_to_detect: float | None
    leaked: int = 0
    total: int = 0
    held: int = 0  # of the leaked, deferred by a throttle that ended in the suspension

    @property
    def leaked_pct(self) -> float:
        return 100.0 * self.leaked / self.total if self.total else 0.0


@dataclass
class Score:
    incidents: list[IncidentScore]
    false_suspensions: list[Verdict]
    throttles: int

    def totals(self) -> dict[str, Any]:
        times = [i.time_to_detect for i in self.incidents if i.time_to_detect is not None]
        leaked = sum(i.leaked for i in self.incidents)
        held = sum(i.held for i in self.incidents)
        total = sum(i.total for i in self.incidents)
        return {
            "incidents": len(self.incidents),
            "detected": sum(i.detected for i in self.incidents),
            "median_time_to_detect": statistics.median(times) if times else None,
            "false_suspensions": len(self.false_suspensions),
            "throttles": self.throttles,
            "leaked": leaked,
            "leaked_of": total,
            "leaked_pct": round(100.0 * leaked / total, 2) if total else 0.0,
            "held": held,
        }


def load_labels(path: Path) -> list[Incident]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [
            Incident(i["connection"], i["kind"], float(i["start"]), float(i["end"]))
            for i in data["incidents"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: not a labels file: {exc!r}") from exc


def first_suspensions(actions: Iterable[Verdict]) -> dict[str, Verdict]:
    first: dict[str, Verdict] = {}
    for v in actions:
        if v.action == "suspend" and v.connection not in first:
            first[v.connection] = v
    return first


def score(
    incidents: Sequence[Incident], actions: Sequence[Verdict], events: Iterable[TraceEvent]
) -> Score:
    first = first_suspensions(actions)
    scores = [_detection(i, first.get(i.connection)) for i in incidents]
    _count_leaks(scores, first, actions, events)
    false = [v for c, v in first.items() if not _covered(v.ts, c, incidents)]
    throttles = sum(1 for v in actions if v.action == "throttle")
    return Score(scores, sorted(false, key=lambda v: v.ts), throttles)


def _detection(incident: Incident, suspension: Verdict | None) -> IncidentScore:
    ts = suspension.ts if suspension else None
    detected = ts is not None and incident.start <= ts <= incident.end + DETECT_GRACE_S
    return IncidentScore(incident, detected, ts - incident.start if detected and ts else None)


def _leak_until(s: IncidentScore, suspension: Verdict | None) -> float:
    """Recipients accepted before this moment (from the incident's start) leaked."""
    if suspension is None or suspension.ts > s.incident.end:
        return float("inf")  # everything from start to end leaked
    return max(suspension.ts, s.incident.start)  # before it began: nothing leaked


def _count_leaks(
    scores: list[IncidentScore],
    first: dict[str, Verdict],
    actions: Iterable[Verdict],
    events: Iterable[TraceEvent],
) -> None:
    by_conn: dict[str, list[tuple[IncidentScore, float]]] = {}
    for s in scores:
        until = _leak_until(s, first.get(s.incident.connection))
        by_conn.setdefault(s.incident.connection, []).append((s, until))
    throttles = _Throttles(actions, by_conn)
    for e in events:
        if type(e) is not Accepted or e.connection not in by_conn:
            continue
        n = len(e.rcpts)
        held = throttles.held(e.connection, e.ts, n)
        for s, until in by_conn[e.connection]:
            if s.incident.start <= e.ts <= s.incident.end:
                s.total += n
                if e.ts < until:
                    s.leaked += n
                    s.held += n if held else 0


class _Throttles:
    """Which messages the throttles of `actions` would have held (see the module's
    docstring), for the connections of `only`. Messages come in time order."""

    def __init__(self, actions: Iterable[Verdict], only: Container[str]) -> None:
        self._spans: dict[str, list[tuple[float, float, float, bool]]] = {}
        opened: dict[str, Verdict] = {}
        suspended: set[str] = set()
        for v in actions:
            c = v.connection
            if c not in only or c in suspended:
                continue
            if v.action == "throttle" and c not in opened:
                opened[c] = v
            elif v.action in ("lift", "suspend") and (t := opened.pop(c, None)) is not None:
                self._add(t, v.ts, v.action == "suspend")
            if v.action == "suspend":
                suspended.add(c)
        for t in opened.values():
            self._add(t, float("inf"), True)
        self._through: dict[str, _LetThrough] = {}

    def _add(self, throttle: Verdict, end: float, suspended: bool) -> None:
        span = (throttle.ts, end, throttle.cap, suspended)
        self._spans.setdefault(throttle.connection, []).append(span)

    def held(self, connection: str, ts: float, n: int) -> bool:
        """Whether the message of `n` recipients at `ts` is deferred and never delivered."""
        spans = self._spans.get(connection)
        if spans is None:
            return False
        let = self._through.get(connection) or self._through.setdefault(connection, _LetThrough())
        let.forget_before(ts - THROTTLE_WINDOW_S)
        while let.span < len(spans) and spans[let.span][1] <= ts:  # spans come in time order
            let.span += 1
        if let.span < len(spans) and spans[let.span][0] <= ts and let.total >= spans[let.span][2]:
            return spans[let.span][3]
        let.add(ts, n)
        return False


class _LetThrough:
    """One connection's messages let through in the throttle's window, their recipients'
    running total, and the first of its throttle spans not over yet."""

    __slots__ = ("messages", "span", "total")

    def __init__(self) -> None:
        self.messages: deque[tuple[float, int]] = deque()
        self.total = 0
        self.span = 0

    def add(self, ts: float, n: int) -> None:
        self.messages.append((ts, n))
        self.total += n

    def forget_before(self, oldest: float) -> None:
        """Forget the messages at or before `oldest`."""
        messages = self.messages
        while messages and messages[0][0] <= oldest:
            self.total -= messages.popleft()[1]


def _covered(ts: float, connection: str, incidents: Sequence[Incident]) -> bool:
    return any(
        i.connection == connection and i.start <= ts <= i.end + OUTCOME_TRAIL_S for i in incidents
    )


def report(result: Score) -> dict[str, Any]:
    """The score as one JSON-able object: incidents, false suspensions, totals."""
    return {
        "incidents": [
            {
                "connection": s.incident.connection,
                "kind": s.incident.kind,
                "start": s.incident.start,
                "detected": s.detected,
                "time_to_detect": s.time_to_detect,
                "leaked": s.leaked,
                "leaked_of": s.total,
                "leaked_pct": round(s.leaked_pct, 2),
                "held": s.held,
            }
            for s in result.incidents
        ],
        "false_suspensions": [
            {"ts": v.ts, "connection": v.connection, "reason": v.reason}
            for v in result.false_suspensions
        ],
        "totals": result.totals(),
    }
