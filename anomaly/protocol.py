"""A protocol against fitting ourselves: fixed seed sets, judged the same way every time.

What: the traces a detector is judged on, fixed here once (`DESIGN`), and the
report of a run over them (`run` -> `Report`; `render_text`,
`render_markdown`, `Report.as_json`; `save_report` and `load_report` keep a
run to print again). The sets:

- `tune`: TUNING seeds 1, 2, 3 (150 connections x 28 days, 80 x 7, 120 x 21,
  each from another start date). Developers may look at these and tune on
  them; their numbers are in-sample and say little about unseen traffic.
- `holdout`: HELD-OUT seeds 9007, 9008, 9009, the same three shapes (the
  issue's held-back traces) from other start dates (other holidays). NOBODY
  TUNES ON THESE: no threshold, rule or calibration may be chosen by looking
  at their traces or their numbers. A change is judged on them once, after it
  was tuned elsewhere; when they have been looked at too often, new seeds
  replace them rather than anyone tuning to them (9001-9003 were retired so,
  after the detector's backlog fix was studied on them; 9004-9006 after two
  looks at the score's first version: `Design.retired`).
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

Promises: the same design, options and detector give the same numbers (the
speeds aside); the per-kind rows and the normal-traffic row sum to the total
(the medians and maxima are over all incidents of the total). Failures: a
trace or labels file that cannot be read or written, a missing public week,
an unknown set name or settings the detector cannot take raise UsageError.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import hashlib
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

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
from anomaly.replay import default_jobs, replay_file
from anomaly.simulate import (
    DEFAULT_PER_WEEK,
    KIND_NAMES,
    SimOptions,
    Simulation,
    output_paths,
    simulate,
)
from anomaly.trace_reader import Accepted, TraceEvent, TraceStats, read_trace
from ugem.core.errors import UsageError
from ugem.core.workdays import ALMATY

SET_NAMES = ("tune", "holdout", "loko", "public")
NORMAL = "normal traffic"
PUBLIC_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "anomaly" / "public"
DEFAULT_CACHE = Path("var") / "anomaly-protocol"
LOKO_MIN_INCIDENTS = 8
SILENCE_S = 1800.0  # a gap in a connection's accepted mail at least this long is a silence
SILENCE_RECENT_S = 3600.0  # ... that counts when it ended at most this long before a suspension


@dataclass(frozen=True)
class Targets:
    """The issue's targets."""

    median_ttd_s: float = 60.0
    max_ttd_s: float = 600.0
    false_suspensions: int = 0
    leaked_pct: float = 2.0
    events_per_s: float = 200_000.0


TARGETS = Targets()


@dataclass(frozen=True)
class Shape:
    """One simulated trace of a seed set: seed, size, first day."""

    seed: int
    connections: int
    days: int
    start: dt.date


@dataclass(frozen=True)
class Design:
    """The fixed seed sets. `DESIGN` is the protocol; tests make small ones."""

    tuning: tuple[Shape, ...] = (
        Shape(1, 150, 28, dt.date(2026, 3, 2)),
        Shape(2, 80, 7, dt.date(2026, 6, 1)),
        Shape(3, 120, 21, dt.date(2026, 10, 5)),
    )
    holdout: tuple[Shape, ...] = (
        Shape(9007, 150, 28, dt.date(2026, 9, 7)),
        Shape(9008, 80, 7, dt.date(2026, 12, 14)),
        Shape(9009, 120, 21, dt.date(2026, 4, 27)),
    )
    retired: tuple[int, ...] = (9001, 9002, 9003, 9004, 9005, 9006)  # looked at too often
    per_week: float = DEFAULT_PER_WEEK
    kinds: tuple[str, ...] = KIND_NAMES
    loko_tuning_seed: int = 7100  # + the kind's number in `kinds` (1, 2, ...)
    loko_tuning_size: tuple[int, int] = (120, 21)  # connections, days
    loko_tuning_start: dt.date = dt.date(2026, 3, 2)
    loko_eval_seed: int = 7200
    loko_eval_size: tuple[int, int] = (60, 14)
    loko_eval_start: dt.date = dt.date(2026, 11, 2)
    loko_eval_per_week: float = 20.0  # ~24 incidents of the one kind in 60 x 14
    public: Path = PUBLIC_DIR

    def shape_options(self, shape: Shape) -> SimOptions:
        return SimOptions(
            seed=shape.seed,
            connections=shape.connections,
            days=shape.days,
            start=shape.start,
            per_week=self.per_week,
        )

    def loko_tuning(self, kind: str) -> SimOptions:
        connections, days = self.loko_tuning_size
        return SimOptions(
            seed=self.loko_tuning_seed + self.kinds.index(kind) + 1,
            connections=connections,
            days=days,
            start=self.loko_tuning_start,
            exclude=(kind,),
            per_week=self.per_week,
        )

    def loko_eval(self, kind: str) -> SimOptions:
        connections, days = self.loko_eval_size
        return SimOptions(
            seed=self.loko_eval_seed + self.kinds.index(kind) + 1,
            connections=connections,
            days=days,
            start=self.loko_eval_start,
            kinds=(kind,),
            per_week=self.loko_eval_per_week,
        )

    def seeds(self) -> dict[str, tuple[int, ...]]:
        """The seeds of each role, to check that they are disjoint."""
        return {
            "tuning": tuple(s.seed for s in self.tuning),
            "holdout": tuple(s.seed for s in self.holdout),
            "retired": self.retired,
            "loko-tuning": tuple(self.loko_tuning(k).seed for k in self.kinds),
            "loko-eval": tuple(self.loko_eval(k).seed for k in self.kinds),
        }

    def plan(self, name: str) -> SetPlan:
        """The plan of one set; UsageError for a name not in SET_NAMES."""
        tuning = tuple(TraceRef(f"tune-{s.seed}", self.shape_options(s)) for s in self.tuning)
        if name == "tune":
            return SetPlan(
                name,
                "TUNING seeds (developers may tune on these): in-sample",
                (Unit("", tuning, tuning),),
            )
        if name == "holdout":
            held = tuple(TraceRef(f"holdout-{s.seed}", self.shape_options(s)) for s in self.holdout)
            return SetPlan(
                name,
                "HELD-OUT seeds (nobody tunes on these); calibrated on the TUNING seeds",
                (Unit("", tuning, held),),
            )
        if name == "loko":
            units = tuple(
                Unit(
                    k,
                    (TraceRef(f"loko-tune-{k}", self.loko_tuning(k)),),
                    (TraceRef(f"loko-eval-{k}", self.loko_eval(k)),),
                )
                for k in self.kinds
            )
            return SetPlan(
                name,
                "LEAVE ONE KIND OUT: calibrated on --exclude-kinds K, judged on --kinds K",
                units,
            )
        if name == "public":
            weeks = tuple(
                TraceRef(
                    f"public-{w}",
                    recorded=(self.public / f"{w}.jsonl.gz", self.public / f"{w}.labels.json"),
                )
                for w in ("week-a", "week-b")
            )
            return SetPlan(
                name,
                "the public weeks (the regression check); calibrated on the TUNING seeds",
                (Unit("", tuning, weeks),),
            )
        raise UsageError(f"--sets: {name!r} is not a set; allowed: {', '.join(SET_NAMES)}, all")


@dataclass(frozen=True)
class TraceRef:
    """A trace of the protocol: simulated (`options`, made in the cache when first needed)
    or recorded (`recorded`: the trace and its labels)."""

    name: str
    options: SimOptions | None = None
    recorded: tuple[Path, Path] | None = None


@dataclass(frozen=True)
class Unit:
    """Calibrate on `tuning`, then judge on each of `evaluation`. `kind`: the kind left out."""

    kind: str
    tuning: tuple[TraceRef, ...]
    evaluation: tuple[TraceRef, ...]


@dataclass(frozen=True)
class SetPlan:
    name: str
    title: str
    units: tuple[Unit, ...]


DESIGN = Design()


def parse_sets(text: str) -> tuple[str, ...]:
    """`tune,holdout`, `all`... as set names in SET_NAMES' order; UsageError for another."""
    names = {n.strip() for n in text.split(",") if n.strip()}
    if not names:
        raise UsageError(f"--sets: no set given; allowed: {', '.join(SET_NAMES)}, all")
    if "all" in names:
        names = (names - {"all"}) | set(SET_NAMES)
    for n in names:
        if n not in SET_NAMES:
            raise UsageError(f"--sets: {n!r} is not a set; allowed: {', '.join(SET_NAMES)}, all")
    return tuple(n for n in SET_NAMES if n in names)


# --- the cache of simulated traces ----------------------------------------------------------


@functools.lru_cache(maxsize=1)
def simulator_digest() -> str:
    """A digest of the simulator's code: a changed simulator makes new traces."""
    here = Path(__file__).parent
    h = hashlib.sha256()
    for path in sorted([here / "simulate.py", *here.glob("sim_*.py")]):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def detector_digest() -> str:
    """A digest of the detector's code (detector.py, baseline.py, features.py): which
    detector a report is of."""
    here = Path(__file__).parent
    h = hashlib.sha256()
    for name in ("detector.py", "baseline.py", "features.py"):
        h.update(name.encode() + b"\0" + (here / name).read_bytes() + b"\0")
    return h.hexdigest()[:12]


def simulate_args(options: SimOptions) -> dict[str, Any]:
    """The exact simulate options, as JSON, with the simulator's digest."""
    return {
        "seed": options.seed,
        "connections": options.connections,
        "days": options.days,
        "start": options.start.isoformat(),
        "kinds": list(options.kinds),
        "exclude": list(options.exclude),
        "per_week": options.per_week,
        "abuse": options.abuse,
        "simulator": simulator_digest(),
    }


def cache_key(options: SimOptions) -> str:
    """A file name for a trace: readable, and a hash of every option and the simulator."""
    text = json.dumps(simulate_args(options), sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"s{options.seed}-c{options.connections}-d{options.days}-{digest}"


@dataclass(frozen=True)
class TraceFiles:
    """A trace on disk with its labels; `options` when simulated."""

    name: str
    trace: Path
    labels: Path
    options: SimOptions | None = None


class Cache:
    """Simulated traces under `root`, by `cache_key`; made when asked for and missing."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def prefix(self, options: SimOptions) -> Path:
        return self.root / cache_key(options)

    def _marker(self, options: SimOptions) -> Path:
        return Path(f"{self.prefix(options)}.args.json")

    def has(self, options: SimOptions) -> bool:
        """Whether the trace of `options` is there, complete, made with these exact options."""
        trace, labels = output_paths(self.prefix(options))
        try:
            args = json.loads(self._marker(options).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return args == simulate_args(options) and trace.is_file() and labels.is_file()

    def make(self, options: SimOptions) -> float:
        """Simulate the trace of `options` into the cache (again, if there); the seconds."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--cache: cannot make {self.root}: {exc}") from exc
        self._marker(options).unlink(missing_ok=True)
        with _quiet_gc():
            summary = simulate(options, self.prefix(options))
        text = json.dumps(simulate_args(options), indent=1) + "\n"
        try:
            self._marker(options).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--cache: cannot write {self._marker(options)}: {exc}") from exc
        return summary.seconds

    def files(self, ref: TraceRef) -> TraceFiles:
        """The files of `ref`, simulated first if not in the cache."""
        if ref.recorded is not None:
            trace, labels = ref.recorded
            for path in (trace, labels):
                if not path.is_file():
                    raise UsageError(f"{ref.name}: {path} is not there")
            return TraceFiles(ref.name, trace, labels)
        if ref.options is None:
            raise UsageError(f"{ref.name}: neither simulated nor recorded")
        if not self.has(ref.options):
            self.make(ref.options)
        trace, labels = output_paths(self.prefix(ref.options))
        return TraceFiles(ref.name, trace, labels, ref.options)


def _make_in_worker(root: Path, options: SimOptions) -> float:
    return Cache(root).make(options)


def prepare(
    refs: Iterable[TraceRef],
    cache: Cache,
    jobs: int,
    progress: Callable[[str], None],
) -> float:
    """Simulate the missing traces of `refs`, `jobs` at a time; the wall seconds."""
    began = time.perf_counter()
    missing: dict[str, tuple[str, SimOptions]] = {}
    for ref in refs:
        if ref.options is not None and not cache.has(ref.options):
            missing.setdefault(cache_key(ref.options), (ref.name, ref.options))
    todo = list(missing.values())
    if not todo:
        return 0.0
    progress(f"simulating {len(todo)} traces into {cache.root}, {jobs} at a time")
    if jobs <= 1 or len(todo) == 1 or "fork" not in multiprocessing.get_all_start_methods():
        for name, options in todo:
            progress(f"  {name}: {cache.make(options):.1f} s")
    else:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(min(jobs, len(todo)), mp_context=context) as pool:
            futures = {
                pool.submit(_make_in_worker, cache.root, options): name for name, options in todo
            }
            for future in as_completed(futures):
                progress(f"  {futures[future]}: {future.result():.1f} s")
    return time.perf_counter() - began


# --- calibration and evaluation --------------------------------------------------------------


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
    with _quiet_gc():
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
    ("unknown users", "unknown users"),
    ("refused as spam", "refused"),
    ("null sender", "null sender"),
    ("senders never seen", "new senders"),
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


def simulate_command(options: SimOptions) -> str:
    """The `ugem anomaly simulate` options that make the trace of `options`."""
    words = [
        f"--seed {options.seed}",
        f"--connections {options.connections}",
        f"--days {options.days}",
        f"--start {options.start.isoformat()}",
    ]
    if not options.abuse:
        words.append("--no-abuse")
    if tuple(options.kinds) != KIND_NAMES:
        words.append(f"--kinds {','.join(options.kinds)}")
    if options.exclude:
        words.append(f"--exclude-kinds {','.join(options.exclude)}")
    if options.per_week != DEFAULT_PER_WEEK:
        words.append(f"--incidents-per-week {options.per_week:g}")
    return " ".join(words)


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


# --- the report -------------------------------------------------------------------------------


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
        )
        for t in s["traces"]
    )
    return SetReport(
        s["name"], s["title"], s["calibration"], tuple(s["tuning"]), traces, tuple(s["warnings"])
    )


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


@contextlib.contextmanager
def _quiet_gc() -> Iterator[None]:
    """Pause the cycle collector and freeze what exists: a replay or a simulation makes
    millions of small objects without cycles (as ugem.commands.anomaly does)."""
    was = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
        gc.unfreeze()


# --- rendering -------------------------------------------------------------------------------


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _leak(r: Row) -> str:
    return f"{r.leaked:,} of {r.leaked_of:,} ({r.leaked_pct:.2f} %)" if r.leaked_of else "-"


def _throttled_leak(r: Row) -> str:
    return f"{r.throttled_pct:.2f} %" if r.leaked_of else "-"


_KIND_HEAD = (
    "kind",
    "detected",
    "median time to detect",
    "max time to detect",
    "leaked recipients",
    "leaked, throttle applied",
    "false suspensions",
    "throttles",
    "misses",
)


def kind_table(s: SetReport) -> list[tuple[str, ...]]:
    lines: list[tuple[str, ...]] = [_KIND_HEAD]
    for r in [*s.rows(), s.total()]:
        detected = f"{r.detected} of {r.incidents}" if r.incidents else "-"
        lines.append(
            (
                r.label,
                detected,
                duration(r.median_ttd),
                duration(r.max_ttd),
                _leak(r),
                _throttled_leak(r),
                str(r.false_suspensions),
                str(r.throttles),
                ", ".join(r.misses()) or "-",
            )
        )
    return lines


def false_table(s: SetReport) -> list[tuple[str, ...]]:
    lines: list[tuple[str, ...]] = [
        (
            "trace",
            "connection",
            "when (Almaty)",
            "findings",
            "silence before",
            "normal traffic then",
        )
    ]
    for f in s.false_suspensions:
        when = dt.datetime.fromtimestamp(f.ts, ALMATY).strftime("%a %Y-%m-%d %H:%M")
        silence = f"{duration(f.silence_s)}" if f.silence_s is not None else "-"
        lines.append(
            (
                f.trace,
                f.connection,
                when,
                ", ".join(f.findings),
                silence,
                "; ".join(f.context) or "-",
            )
        )
    return lines


def trace_table(s: SetReport) -> list[tuple[str, ...]]:
    lines: list[tuple[str, ...]] = [
        ("trace", "made by", "events", "detected", "false suspensions", "replay")
    ]
    for t in s.traces:
        detected = sum(i.detected for i in t.incidents)
        speed = t.events / t.replay_s if t.replay_s > 0 else 0.0
        lines.append(
            (
                t.name,
                t.spec,
                f"{t.events:,}",
                f"{detected} of {len(t.incidents)}",
                str(len(t.false_suspensions)),
                f"{t.replay_s:.1f} s ({speed:,.0f} events/s)",
            )
        )
    return lines


def undetected_table(s: SetReport) -> list[tuple[str, ...]]:
    lines: list[tuple[str, ...]] = [
        ("trace", "kind", "connection", "start (Almaty)", "length", "leaked recipients", "why")
    ]
    for i in s.incidents:
        if not i.detected:
            when = dt.datetime.fromtimestamp(i.start, ALMATY).strftime("%a %Y-%m-%d %H:%M")
            why = "connection suspended before" if i.suspended_before else "missed"
            length = duration(i.end - i.start)
            lines.append(
                (
                    i.trace,
                    i.kind,
                    i.connection,
                    when,
                    length,
                    f"{i.leaked:,} of {i.leaked_of:,}",
                    why,
                )
            )
    return lines


def targets_table(report: Report, targets: Targets = TARGETS) -> list[tuple[str, ...]]:
    """The totals of each set against the targets; a miss is marked ✗."""

    def mark(text: str, ok: bool) -> str:
        return text if ok else f"{text} ✗"

    head = ("", "target", *(s.name for s in report.sets))
    totals = [s.total() for s in report.sets]
    lines = [head]
    lines.append(
        (
            "incidents detected",
            "all",
            *(mark(_detected(t), t.detected == t.incidents) for t in totals),
        )
    )
    lines.append(
        (
            "median time to detect",
            f"≤ {duration(targets.median_ttd_s)}",
            *(
                mark(duration(t.median_ttd), (t.median_ttd or 0) <= targets.median_ttd_s)
                for t in totals
            ),
        )
    )
    lines.append(
        (
            "max time to detect",
            f"≤ {targets.max_ttd_s / 60:g} min",
            *(mark(duration(t.max_ttd), (t.max_ttd or 0) <= targets.max_ttd_s) for t in totals),
        )
    )
    lines.append(
        (
            "false suspensions",
            str(targets.false_suspensions),
            *(
                mark(str(t.false_suspensions), t.false_suspensions <= targets.false_suspensions)
                for t in totals
            ),
        )
    )
    lines.append(
        (
            "leaked recipients",
            f"≤ {targets.leaked_pct:g} %",
            *(mark(f"{t.leaked_pct:.2f} %", t.leaked_pct <= targets.leaked_pct) for t in totals),
        )
    )
    lines.append(
        (
            "leaked, throttle applied (a model)",
            "(reported)",
            *(f"{t.throttled_pct:.2f} %" for t in totals),
        )
    )
    lines.append(("throttles", "(reported)", *(str(t.throttles) for t in totals)))
    lines.append(
        (
            f"replay speed (--jobs {report.jobs})",
            f"≥ {targets.events_per_s:,.0f} events/s",
            *(
                mark(f"{s.events_per_s:,.0f} events/s", s.events_per_s >= targets.events_per_s)
                for s in report.sets
            ),
        )
    )
    lines.append(("events replayed", "", *(f"{s.events:,}" for s in report.sets)))
    return lines


def _detected(r: Row) -> str:
    before = f" ({r.suspended_before} suspended before)" if r.suspended_before else ""
    return f"{r.detected} of {r.incidents}{before}"


def markdown_table(lines: Sequence[Sequence[str]]) -> str:
    def cells(line: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in line) + " |"

    head, *body = lines
    return "\n".join([cells(head), "|" + "---|" * len(head), *(cells(b) for b in body)])


def text_table(lines: Sequence[Sequence[str]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _set_sections(
    s: SetReport, every_miss: bool = True
) -> list[tuple[str, list[tuple[str, ...]] | None]]:
    """(a heading or a line of text, the table under it or None) for one set; `every_miss`:
    with the table of the incidents not detected (long: the per-kind rows count them)."""
    out: list[tuple[str, list[tuple[str, ...]] | None]] = [
        (f"{s.name}: {s.title}", None),
        (f"calibration: {s.calibration}", None),
        (f"tuning traces: {_names(s.tuning)}", None),
        ("traces judged", trace_table(s)),
        ("per kind", kind_table(s)),
    ]
    if s.false_suspensions:
        out.append(("false suspensions", false_table(s)))
    if every_miss and any(not i.detected for i in s.incidents):
        out.append(("incidents not detected", undetected_table(s)))
    out += [(f"warning: {w}", None) for w in s.warnings]
    return out


def _names(names: Sequence[str]) -> str:
    """`loko-tune-a, loko-tune-b...` shortened to their common start when many."""
    if len(names) <= 4:
        return ", ".join(names) or "-"
    return f"{len(names)} traces, {names[0]} ... {names[-1]}"


def _header(report: Report) -> list[str]:
    return [
        f"{report.method} (code {report.detector}); started {report.started};"
        f" {report.machine}; --jobs {report.jobs}",
        f"simulated {report.simulate_s:.0f} s, calibrated and evaluated {report.evaluate_s:.0f} s;"
        f" cache {report.cache}",
    ]


def render_text(report: Report) -> str:
    out = [*_header(report), ""]
    for s in report.sets:
        for title, table in _set_sections(s):
            if table is None:
                out.append(title)
            else:
                out += ["", f"  {title}:", text_table(table), ""]
        out.append("")
    out += ["totals against the targets:", text_table(targets_table(report)), ""]
    return "\n".join(out)


def render_markdown(report: Report) -> str:
    out = [*(f"{line}  " for line in _header(report)), ""]
    for s in report.sets:
        first, *rest = _set_sections(s, every_miss=False)
        out += [f"#### {first[0]}", ""]
        for title, table in rest:
            if table is None:
                out += [title, ""]
            else:
                out += [f"*{title}*", "", markdown_table(table), ""]
    out += ["#### Totals against the targets", "", markdown_table(targets_table(report)), ""]
    return "\n".join(out)


def stderr_progress(line: str) -> None:
    print(f"[protocol {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)
