"""The red team's simulator: a labelled synthetic trace of normal traffic and abuse.

`simulate(options, prefix)` writes `PREFIX.jsonl.gz`, a trace in the format of
../shared/anomaly/TRACE-FORMAT.md (read back by `anomaly.trace_reader.read_trace`),
and `PREFIX.labels.json` (period, connections, incidents with connection,
kind, start and end), and returns a `Summary`. `Simulation(options)` is the
same without files: `batches()` yields the events day by day, sorted by time,
with the tag of the incident each belongs to (0 for normal traffic), and then
`incidents()` and `labels()` tell what was made (the tests read these).

How: the world (sim_world) and each organisation's plan (sim_normal) and the
incidents (sim_incidents) are decided first; then, for each day of the
period, every organisation's normal traffic of the day (sim_normal) and the
incidents starting that day (sim_abuse) are generated into one list with the
events left over from the day before (outcomes trail their messages), which is
sorted by time (a stable sort, so ties keep the order of generation) and
written up to the next midnight. Lines are encoded by msgspec a day at a
time and compressed by ISA-L (gzip, level 1, no timestamp in the header).

Promises: the output depends on the options only (`SimOptions`: the seed, the
sizes, the start date, the kinds...): the same options give byte-identical
files; `ts` never decreases; nothing is written at or after the period's end
(outcomes due later are left out, as a recording that ends would); an
incident's start and end are its first and last abusive `accepted` message,
its delivery outcomes trail it by at most sim_events.ABUSE_TRAIL_S; incidents
of one connection never overlap. Bad options raise UsageError naming the
option and what is allowed; a file that cannot be written raises UsageError
(a partial file is not left under the final name).
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

import msgspec
from isal import isal_zlib

from anomaly.sim_abuse import KINDS, Attack
from anomaly.sim_calendar import make_days
from anomaly.sim_events import AbuseOutcomes, Event, Mailer
from anomaly.sim_incidents import Planned, plan_incidents
from anomaly.sim_normal import OrgTraffic, plan_org
from anomaly.sim_world import build_world, sub_rng
from ugem.core.errors import UsageError

DEFAULT_START = dt.date(2026, 3, 2)
DEFAULT_PER_WEEK = 12.0  # incidents a week per 100 connections: ~70 in a month of 150
MAX_CONNECTIONS, MAX_DAYS, MAX_PER_WEEK = 2000, 120, 1000.0
KIND_NAMES = tuple(KINDS)
_GZIP = 16 + 15
_LEVEL = 1
_TS = itemgetter(0)


@dataclass(frozen=True)
class SimOptions:
    seed: int = 1
    connections: int = 60
    days: int = 7
    start: dt.date = DEFAULT_START
    kinds: tuple[str, ...] = tuple(KINDS)
    exclude: tuple[str, ...] = ()
    per_week: float = DEFAULT_PER_WEEK
    abuse: bool = True

    def chosen_kinds(self) -> list[str]:
        """The kinds incidents are drawn from, in the registry's order."""
        if not self.abuse:
            return []
        return [k for k in KINDS if k in self.kinds and k not in self.exclude]

    def check(self) -> None:
        """UsageError naming the first option out of its bounds."""
        if not 0 <= self.seed < 2**63:
            raise UsageError(f"--seed: {self.seed} is out of range; allowed 0 .. 2**63-1")
        if not 1 <= self.connections <= MAX_CONNECTIONS:
            raise UsageError(
                f"--connections: {self.connections} is out of range; allowed 1 .. {MAX_CONNECTIONS}"
            )
        if not 1 <= self.days <= MAX_DAYS:
            raise UsageError(f"--days: {self.days} is out of range; allowed 1 .. {MAX_DAYS}")
        if not 0.0 <= self.per_week <= MAX_PER_WEEK:
            raise UsageError(
                f"--incidents-per-week: {self.per_week:g} is out of range;"
                f" allowed 0 .. {MAX_PER_WEEK:g}"
            )
        if not 1991 <= self.start.year <= 2099:
            raise UsageError(f"--start: {self.start} is out of range; allowed years 1991 .. 2099")
        for option, names in (("--kinds", self.kinds), ("--exclude-kinds", self.exclude)):
            for name in names:
                if name not in KINDS:
                    raise UsageError(
                        f"{option}: {name!r} is not a kind of abuse; allowed: {', '.join(KINDS)}"
                    )
        if self.abuse and not self.chosen_kinds():
            raise UsageError("--exclude-kinds: no kind of abuse is left; use --no-abuse for none")


@dataclass(frozen=True)
class IncidentRecord:
    number: int
    connection: str
    kind: str
    start: float
    end: float
    messages: int


@dataclass(frozen=True)
class Summary:
    trace: Path
    labels: Path
    events: int
    connections: int
    days: int
    incidents: int
    seconds: float


class Simulation:
    def __init__(self, options: SimOptions) -> None:
        options.check()
        self.options = options
        self.days = make_days(options.start, options.days)
        self.start, self.end = self.days[0].start, self.days[-1].end
        self.world = build_world(options.seed, options.connections, options.days)
        self.plans = {o.index: plan_org(options.seed, o, self.days) for o in self.world.orgs}
        self.planned = plan_incidents(
            self.world, self.days, self.plans, options.chosen_kinds(), options.per_week
        )
        self._made: list[IncidentRecord] = []

    def batches(self) -> Iterator[list[Event]]:
        """The events of the period, day by day, each list sorted by time."""
        traffic = [
            OrgTraffic(self.world, o, self.plans[o.index], self.end) for o in self.world.orgs
        ]
        by_day: dict[int, list[Planned]] = {}
        for p in self.planned:
            by_day.setdefault(p.day_index, []).append(p)
        self._made = []
        out: list[Event] = []
        for day in self.days:
            for t in traffic:
                t.day(day, out)
            for p in by_day.get(day.index, []):
                if (made := self._attack(p, out)) is not None:
                    self._made.append(made)
            out.sort(key=_TS)
            cut = bisect.bisect_left(out, day.end, key=_TS)
            batch, out = out[:cut], out[cut:]
            yield batch

    def _attack(self, p: Planned, out: list[Event]) -> IncidentRecord | None:
        """Generate one incident into `out`; what it made (None if nothing)."""
        seed = self.options.seed
        rng = sub_rng(seed, "attack", p.number)
        fate = AbuseOutcomes(rng.uniform(0.02, 0.25), rng.uniform(0.02, 0.2))
        outcomes = sub_rng(seed, "attack-outcomes", p.number)
        mailer = Mailer(out, outcomes, p.org.domain, p.number, self.end)
        attack = Attack(
            p.number, p.org, self.world, self.plans[p.org.index], p.start, p.end, p.day_index,
            rng, mailer, fate,
        )  # fmt: skip
        p.kind.make(attack)
        if attack.first is None or attack.last is None:
            return None
        return IncidentRecord(
            p.number, p.org.domain, p.kind.name, attack.first, attack.last, attack.messages
        )

    def incidents(self) -> list[IncidentRecord]:
        """The incidents made (after `batches()`), by start: those with a message at least."""
        return sorted(self._made, key=lambda r: (r.start, r.number))

    def labels(self) -> dict[str, Any]:
        return {
            "period": [self.start, self.end],
            "connections": [o.domain for o in self.world.orgs],
            "incidents": [
                {"connection": r.connection, "kind": r.kind, "start": r.start, "end": r.end}
                for r in self.incidents()
            ],
        }


def output_paths(prefix: Path) -> tuple[Path, Path]:
    return Path(f"{prefix}.jsonl.gz"), Path(f"{prefix}.labels.json")


def simulate(options: SimOptions, prefix: Path) -> Summary:
    """Write PREFIX.jsonl.gz and PREFIX.labels.json; see the module docstring."""
    began = time.perf_counter()
    trace, labels = output_paths(prefix)
    if not trace.parent.is_dir():
        raise UsageError(f"--out: {trace.parent} is not a directory")
    sim = Simulation(options)
    encoder = msgspec.json.Encoder()
    events = 0
    partial = Path(f"{trace}.partial")
    try:
        with partial.open("wb") as f:
            deflate = isal_zlib.compressobj(_LEVEL, isal_zlib.DEFLATED, _GZIP)
            for batch in sim.batches():
                events += len(batch)
                f.write(deflate.compress(encoder.encode_lines([e[1] for e in batch])))
            f.write(deflate.flush())
        os.replace(partial, trace)
        text = json.dumps(sim.labels(), indent=1, ensure_ascii=False) + "\n"
        labels.write_text(text, encoding="utf-8")
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise UsageError(f"--out: cannot write {prefix}.*: {exc}") from exc
    return Summary(
        trace,
        labels,
        events,
        options.connections,
        options.days,
        len(sim.incidents()),
        time.perf_counter() - began,
    )


def split_kinds(text: str, option: str) -> tuple[str, ...]:
    """A comma-separated list of kinds as typed; UsageError for an empty one."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise UsageError(f"{option}: no kind given; allowed: {', '.join(KINDS)}")
    return names
