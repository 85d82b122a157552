"""Where and when the simulated incidents happen.

`plan_incidents(world, days, plans, kinds, per_week)` places
round(per_week x connections/100 x days/7) incidents: kinds taken in turns
from a shuffled list of `kinds` (so each kind comes once before any comes
twice), each on an organisation that has what the kind needs (a newsletter,
a second domain; where none has, one is given it: `Kind.grant`), at a time
its `when` allows (any time; working hours of a working day; inside a
reporting-deadline surge of the organisation, a surge day given to it if it
has none), for a duration drawn log-uniformly from the kind's range.

Promises: deterministic by the seed (`sub_seed`: one stream for the kinds'
order, one per incident); incidents start after a warm-up (a day, or a third
of a shorter period) and end before the period does; on one organisation they
keep two hours apart and an hour away from its outages. An incident that
finds no room after some tries on several organisations is left out (so a
very high rate gives fewer incidents than asked). `plans` is updated for an
organisation given a surge day. Nothing here raises.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from anomaly.sim_abuse import KINDS, Kind
from anomaly.sim_calendar import DAY_S, Day
from anomaly.sim_normal import OrgPlan, plan_org
from anomaly.sim_world import Org, World, log_uniform, sub_rng

APART_S = 2 * 3600.0  # between two incidents of one organisation
OUTAGE_MARGIN_S = 3600.0
_TRIES = 40
_ORGS_TRIED = 6


@dataclass(frozen=True, slots=True)
class Planned:
    number: int  # 1, 2, ...: the tag of its events
    kind: Kind
    org: Org
    start: float
    end: float
    day_index: int


def incident_count(per_week: float, connections: int, days: int) -> int:
    return round(per_week * connections / 100.0 * days / 7.0)


def plan_incidents(
    world: World, days: list[Day], plans: dict[int, OrgPlan], kinds: list[str], per_week: float
) -> list[Planned]:
    if not kinds or not days:
        return []
    total = incident_count(per_week, len(world.orgs), len(days))
    period_start, period_end = days[0].start, days[-1].end
    warm = period_start + min(DAY_S, (period_end - period_start) / 3.0)
    order_rng = sub_rng(world.seed, "incident-kinds")
    order: list[str] = []
    taken: dict[int, list[tuple[float, float]]] = {}
    planned: list[Planned] = []
    for number in range(1, total + 1):
        if not order:
            order = list(kinds)
            order_rng.shuffle(order)
        kind = KINDS[order.pop(0)]
        rng = sub_rng(world.seed, "incident", number)
        eligible = [o for o in world.orgs if kind.needs is None or kind.needs(o)]
        if not eligible:
            org = rng.choice(world.orgs)
            if kind.grant is not None:
                kind.grant(world, org, rng)
                plans[org.index] = plan_org(world.seed, org, days)
            eligible = [org]
        for _ in range(_ORGS_TRIED):
            org = rng.choice(eligible)
            found = _place(rng, kind, world, org, days, plans, taken.get(org.index, []), warm)
            if found is not None:
                start, end = found
                taken.setdefault(org.index, []).append((start, end))
                day = int((start - period_start) // DAY_S)
                planned.append(Planned(number, kind, org, start, end, day))
                break
    return planned


def _place(
    rng: random.Random,
    kind: Kind,
    world: World,
    org: Org,
    days: list[Day],
    plans: dict[int, OrgPlan],
    taken: list[tuple[float, float]],
    warm: float,
) -> tuple[float, float] | None:
    period_end = days[-1].end
    length = log_uniform(rng, *kind.duration)
    later = [d for d in days if d.start >= warm - DAY_S]
    for _ in range(_TRIES):
        if kind.when == "surge":
            window = _surge(rng, world, org, days, plans, warm)
            if window is None:
                return None
            start = window[0] + rng.uniform(0.0, 0.3) * (window[1] - window[0])
            end = min(start + length, window[1])
        elif kind.when == "work":
            working = [d for d in later if d.working] or later
            day = rng.choice(working)
            start = day.at(rng.uniform(9.0, 17.0))
            end = min(start + length, day.at(19.0))
        else:
            start = rng.uniform(warm, max(warm, period_end - length - 600.0))
            end = start + length
        end = min(end, period_end - 600.0)
        if start < warm or end - start < 300.0:
            continue
        busy = [(s - APART_S, e + APART_S) for s, e in taken]
        busy += [(s - OUTAGE_MARGIN_S, e + OUTAGE_MARGIN_S) for s, e in plans[org.index].outages]
        if all(end < s or start > e for s, e in busy):
            return start, end
    return None


def _surge(
    rng: random.Random,
    world: World,
    org: Org,
    days: list[Day],
    plans: dict[int, OrgPlan],
    warm: float,
) -> tuple[float, float] | None:
    """A reporting-deadline surge of `org` after the warm-up; one is given it if none."""
    windows = [w for w in plans[org.index].surges if w[0] >= warm]
    if not windows:
        candidates = [d for d in days if d.start >= warm and d.working]
        candidates = candidates or [d for d in days if d.start >= warm] or days
        org.extra_surge_days.append(rng.choice(candidates).index)
        plans[org.index] = plan_org(world.seed, org, days)
        windows = [w for w in plans[org.index].surges if w[0] >= warm]
    return rng.choice(windows) if windows else None
