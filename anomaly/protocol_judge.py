"""The protocol's methods, and one trace judged.

What: a `Method` is a detector as the protocol judges it: `calibrate(tuning traces)
-> DetectorSettings` and `evaluate(settings, trace, jobs) -> TraceResult`. `CURRENT`
judges the default thresholds of anomaly/detector.py and reads no tuning trace
(`fixed_rules`); `CALIBRATED` chooses them on the tuning traces (anomaly.calibrate:
`calibrated`). `evaluate_detector` replays the detector over a trace and scores it
by anomaly.evaluate's rules (TRACE-FORMAT.md's); `judged` makes that a `TraceResult`:
each incident (one whose connection was suspended before it began is not detected,
and marked "suspended before"); each false suspension with its findings, the
silence of the connection that ended in the hour before it (an outage's backlog
looks so) and, for a simulated trace, what the simulator's plan had that
organisation doing then (`_Plans`); the kind of incident each throttle fell in, or
NORMAL.

Promises: the same settings and trace give the same result, the replay's wall time
aside. Failures: settings the detector cannot take, and a trace or labels file that
cannot be read, raise UsageError.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from anomaly.calibrate import choose, record_all
from anomaly.detector import Thresholds, Verdict
from anomaly.evaluate import (
    OUTCOME_TRAIL_S,
    Incident,
    Score,
    first_suspensions,
    load_labels,
    score,
)
from anomaly.protocol_cache import TraceFiles, quiet_gc
from anomaly.protocol_design import simulate_command
from anomaly.replay import default_jobs, replay_file
from anomaly.simulate import SimOptions, Simulation
from anomaly.trace_reader import Accepted, TraceEvent, TraceStats, read_trace
from ugem.core.errors import UsageError

NORMAL = "normal traffic"
SILENCE_S = 1800.0  # a gap in a connection's accepted mail at least this long is a silence
SILENCE_RECENT_S = 3600.0  # ... that counts when it ended at most this long before a suspension


@dataclass(frozen=True)
class DetectorSettings:
    """What a calibration decided for the detector. The detector of today takes none (its
    rules are the constants of anomaly/detector.py): `values` is empty. A calibrating
    detector puts what it learned here (name, value)."""

    name: str = "the default thresholds of anomaly/detector.py"
    values: tuple[tuple[str, float], ...] = ()


DEFAULT_SETTINGS = DetectorSettings()


@dataclass(frozen=True)
class IncidentResult:
    trace: str
    connection: str
    kind: str
    start: float
    end: float
    detected: bool
    time_to_detect: float | None
    leaked: int
    leaked_of: int
    suspended_before: bool  # its connection was suspended before it began: not detected
    held: int = 0  # of the leaked, what a live node's throttle would have deferred for good


@dataclass(frozen=True)
class FalseSuspension:
    trace: str
    connection: str
    ts: float
    reason: str
    findings: tuple[str, ...]  # what the detector saw: volume, unknown recipients, ...
    silence_s: float | None  # the connection's silence that ended in the hour before it
    context: tuple[str, ...]  # what the simulator had the organisation doing then


@dataclass(frozen=True)
class TraceResult:
    """One trace judged."""

    name: str
    spec: str  # how it was made: the simulate options, or the recorded file
    events: int
    replay_s: float
    incidents: tuple[IncidentResult, ...]
    false_suspensions: tuple[FalseSuspension, ...]
    throttles: tuple[str, ...]  # for each throttle, the kind of the incident it fell in, or NORMAL
    settings: tuple[tuple[str, float], ...] = ()  # what the calibration that judged it decided


Calibrate = Callable[[Sequence[TraceFiles]], DetectorSettings]
Evaluate = Callable[[DetectorSettings, TraceFiles, int], TraceResult]


@dataclass(frozen=True)
class Method:
    """A detector as the protocol judges it. `reads_tuning`: whether `calibrate` reads its
    tuning traces (when not, they are not generated and it is given none)."""

    name: str
    calibrate: Calibrate
    evaluate: Evaluate
    reads_tuning: bool


def fixed_rules(tuning: Sequence[TraceFiles]) -> DetectorSettings:
    """The calibration of today's detector: none; the defaults whatever the traces."""
    return DEFAULT_SETTINGS


def calibrated(tuning: Sequence[TraceFiles]) -> DetectorSettings:
    """The thresholds anomaly.calibrate chooses on `tuning`, the reason in the name."""
    choice = choose(record_all([(f.trace, f.labels) for f in tuning], default_jobs()))
    t = choice.thresholds
    values = (("throttle", t.throttle), ("suspend", t.suspend), ("corroborated", t.corroborated))
    return DetectorSettings(f"calibrated: {choice.why}", values)


def thresholds_of(settings: DetectorSettings) -> Thresholds:
    """The detector's thresholds that `settings` name; UsageError for a name it has not."""
    try:
        return Thresholds(**dict(settings.values))
    except TypeError as exc:
        raise UsageError(f"{settings.name}: not the detector's thresholds: {exc}") from exc


def evaluate_detector(settings: DetectorSettings, files: TraceFiles, jobs: int) -> TraceResult:
    """Replay the detector over `files` in `jobs` processes and score it (anomaly.evaluate)."""
    thresholds = thresholds_of(settings)
    incidents = load_labels(files.labels)
    stats = TraceStats()
    with quiet_gc():
        began = time.perf_counter()
        actions = replay_file(files.trace, jobs, stats, thresholds)
        replay_s = time.perf_counter() - began
        watch = {c: v.ts for c, v in first_suspensions(actions).items()}
        silences: dict[str, tuple[float, float]] = {}
        events = _noting_silences(read_trace(files.trace), watch, silences)
        result = score(incidents, actions, events)
    return judged(files, result, actions, stats.events, replay_s, silences)


CURRENT = Method("the detector with its default thresholds", fixed_rules, evaluate_detector, False)
CALIBRATED = Method(
    "the detector, thresholds calibrated on the tuning traces", calibrated, evaluate_detector, True
)


def _noting_silences(
    events: Iterable[TraceEvent], watch: dict[str, float], silences: dict[str, tuple[float, float]]
) -> Iterator[TraceEvent]:
    """`events`, noting for each connection of `watch` its last silence (a gap of SILENCE_S or
    more between accepted messages) before the time `watch` gives it."""
    last: dict[str, float] = {}
    for e in events:
        if type(e) is Accepted and e.connection in watch and e.ts <= watch[e.connection]:
            before = last.get(e.connection)
            if before is not None and e.ts - before >= SILENCE_S:
                silences[e.connection] = (before, e.ts)
            last[e.connection] = e.ts
        yield e


_FINDINGS = (  # words of anomaly.score's findings, and the finding's name in a table
    ("against a usual", "volume"),
    ("against little history", "volume (no history)"),
    ("never mailed before", "new recipients"),
    ("mailed strangers", "strangers"),
    ("messages, strangers", "one mailbox to strangers"),
    ("messages, new people at its partner", "one mailbox to partners' people"),
    ("at a foreign domain never mailed", "new foreign domains"),
    ("unknown users", "unknown users"),
    ("refused as spam", "refused"),
    ("null sender", "null sender"),
    ("senders never seen", "new senders"),
    ("domains it never sent from", "new sender domains"),
    ("mail loop", "repeated pair"),
)


def findings(reason: str) -> tuple[str, ...]:
    """The kinds of evidence a verdict's reason names."""
    return tuple(name for words, name in _FINDINGS if words in reason)


def judged(
    files: TraceFiles,
    result: Score,
    actions: Sequence[Verdict],
    events: int,
    replay_s: float,
    silences: dict[str, tuple[float, float]],
) -> TraceResult:
    """A `TraceResult` from anomaly.evaluate's `Score` of `actions` and what was noted beside
    it (`silences`: see `_noting_silences`)."""
    first = first_suspensions(actions)
    incidents = tuple(
        IncidentResult(
            files.name,
            s.incident.connection,
            s.incident.kind,
            s.incident.start,
            s.incident.end,
            s.detected,
            s.time_to_detect,
            s.leaked,
            s.total,
            _suspended_before(first.get(s.incident.connection), s.incident.start),
            s.held,
        )
        for s in result.incidents
    )
    plans = _Plans(files.options) if result.false_suspensions else None
    false = []
    for v in result.false_suspensions:
        gap = silences.get(v.connection)
        silence = gap[1] - gap[0] if gap and v.ts - gap[1] <= SILENCE_RECENT_S else None
        context = plans.around(v.connection, v.ts) if plans else ()
        false.append(
            FalseSuspension(
                files.name, v.connection, v.ts, v.reason, findings(v.reason), silence, context
            )
        )
    labels = [s.incident for s in result.incidents]
    throttles = [v for v in actions if v.action == "throttle"]
    kinds = tuple(_kind_at(labels, t.connection, t.ts) for t in throttles)
    spec = simulate_command(files.options) if files.options else str(files.trace)
    return TraceResult(files.name, spec, events, replay_s, incidents, tuple(false), kinds)


def _suspended_before(suspension: Verdict | None, start: float) -> bool:
    return suspension is not None and suspension.ts < start


def _kind_at(incidents: Sequence[Incident], connection: str, ts: float) -> str:
    for i in incidents:
        if i.connection == connection and i.start <= ts <= i.end + OUTCOME_TRAIL_S:
            return i.kind
    return NORMAL


class _Plans:
    """What the simulator planned for each organisation of a simulated trace (its outages,
    surges, newsletters...), rebuilt from the options (no events are made)."""

    def __init__(self, options: SimOptions | None) -> None:
        self.sim = Simulation(options) if options is not None else None

    def around(self, connection: str, ts: float) -> tuple[str, ...]:
        if self.sim is None:
            return ()
        org = next((o for o in self.sim.world.orgs if o.domain == connection), None)
        if org is None:
            return ()
        plan = self.sim.plans[org.index]
        hour = 3600.0
        found = [
            f"outage backlog ({(e - s) / hour:.1f} h down, back {(ts - e) / 60:.0f} min before)"
            for s, e in plan.outages
            if e - 60.0 <= ts <= e + hour
        ]
        found += ["deadline surge" for s, e in plan.surges if s <= ts <= e + hour]
        found += ["newsletter issue" for t in plan.newsletters if t <= ts <= t + 8 * hour]
        found += ["planned mass mailing" for t in plan.mass if t <= ts <= t + 8 * hour]
        found += ["holiday greetings" for t in plan.greetings if t <= ts <= t + 4 * hour]
        found += ["monitoring alert storm" for s, e in plan.storms if s <= ts <= e + 600.0]
        return tuple(found) or ("office mail (nothing planned)",)
