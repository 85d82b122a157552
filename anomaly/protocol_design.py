"""The protocol's design: the fixed seed sets, and the key of each simulated trace.

What: `DESIGN` (a `Design`: the TUNING and HELD-OUT shapes, the retired seeds, the
leave-one-kind-out seeds and sizes, the public weeks) and each set's plan
(`Design.plan`: `Unit`s of tuning and evaluation `TraceRef`s); `parse_sets` for
`--sets`; `TARGETS`, the issue's; `simulate_args` and `cache_key` (a trace's exact
simulate options and `simulator_digest`, the simulator's code), `simulate_command`
(the same options as `ugem anomaly simulate` words), `detector_digest` (which
detector a report is of).

Promises: nothing here makes or reads a trace; the same design gives the same plans
and keys, and its roles' seeds are disjoint (`Design.seeds`). `simulator_digest`
hashes simulate.py and sim_*.py, `detector_digest` detector.py, baseline.py and
features.py, by name and nothing else: a cached trace stays valid while those files
do not change. Failures: an unknown set name raises UsageError; a digest whose
source cannot be read raises OSError.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anomaly.simulate import DEFAULT_PER_WEEK, KIND_NAMES, SimOptions
from ugem.core.errors import UsageError

SET_NAMES = ("tune", "holdout", "loko", "public")
PUBLIC_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "anomaly" / "public"


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
    # From 9025 the held-out traces no longer all start on a Monday: 9028 a Tuesday after the
    # May holidays, 9029 a Friday, 9030 a Wednesday four days before Nauryz.
    holdout: tuple[Shape, ...] = (
        Shape(9028, 150, 28, dt.date(2026, 5, 12)),
        Shape(9029, 80, 7, dt.date(2026, 11, 27)),
        Shape(9030, 120, 21, dt.date(2027, 3, 17)),
    )
    retired: tuple[int, ...] = tuple(range(9001, 9028))  # looked at (9025-9027: 00e034d)
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


@functools.lru_cache(maxsize=1)
def simulator_digest() -> str:
    """A digest of the simulator's code: a changed simulator makes new traces."""
    here = Path(__file__).parent
    h = hashlib.sha256()
    for path in sorted([here / "simulate.py", *here.glob("sim_*.py")]):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


DETECTOR_FILES = (  # every module a verdict depends on (a test checks none is missed)
    "detector.py",
    "baseline.py",
    "features.py",
    "score.py",
    "surprise.py",
    "recipients.py",
    "strangers.py",
    "drift.py",
    "loops.py",
    "free_mail.py",
    "sender_key.py",
    "warmup.py",
)


def detector_digest() -> str:
    """A digest of the detector's code (`DETECTOR_FILES`): which detector a report is of."""
    here = Path(__file__).parent
    h = hashlib.sha256()
    for name in DETECTOR_FILES:
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
