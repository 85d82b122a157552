"""The simulator's calendar: the days of a period and when in a day mail is written.

`make_days(start, n)` lists n consecutive Asia/Almaty days from `start`, each
a `Day`: its local midnight as Unix time, whether it is a working day (by
`ugem.core.workdays`: Kazakhstan's weekends, public holidays and transferred days,
a transferred working Saturday included), whether it is the shortened working
day before a public holiday (by one hour, as the Labour Code has it), and the
public holiday ahead, if any, for the greetings mailed before it.

The profiles say how the mail of a day spreads over its 48 half-hours, as
cumulative weights: `WORK` (the office: a start at 8:30-9:00, a peak at 10-12,
the lunch dip at 13-14, a tail into the evening), `SHORT` (the day before a
holiday), `OFF` (the little mail of weekends and holidays, late morning to
late evening) and `ALLDAY` (what robots send citizens, day and night but mostly
by day). `draw_times(rng, profile, n, start)` draws n moments of a day from one.

Pure; nothing here reads the clock. A date the `holidays` package has no
calendar for is treated as it knows it (no holidays): never an error.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from dataclasses import dataclass

import holidays

from ugem.core.workdays import ALMATY, WorkCalendar

HALF_HOUR = 1800.0
DAY_S = 86400.0
_WORK = (
    [0.02] * 12
    + [0.04, 0.06, 0.1, 0.2, 0.35, 0.8]  # 6:00-9:00
    + [1.4, 1.8, 2.1, 2.2, 2.1, 2.0, 1.8, 1.5]  # 9:00-13:00
    + [0.7, 0.8]  # lunch
    + [1.4, 1.7, 1.9, 1.9, 1.9, 1.8, 1.6, 1.4]  # 14:00-18:00
    + [1.0, 0.7, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.12, 0.08, 0.05, 0.03]  # the evening
)
_SHORT = [w * (0.5 if 34 <= i < 36 else 0.3 if i >= 36 else 1.0) for i, w in enumerate(_WORK)]
_OFF = [0.05] * 16 + [0.3] * 4 + [1.0] * 24 + [0.3] * 4
_ALLDAY = [w**0.6 + 0.1 for w in _WORK]
assert len(_WORK) == len(_OFF) == 48

Profile = tuple[float, ...]
WORK: Profile = tuple(itertools.accumulate(_WORK))
SHORT: Profile = tuple(itertools.accumulate(_SHORT))
OFF: Profile = tuple(itertools.accumulate(_OFF))
ALLDAY: Profile = tuple(itertools.accumulate(_ALLDAY))
_BINS = range(48)
_CALENDAR = WorkCalendar()


@dataclass(frozen=True, slots=True)
class Day:
    index: int  # 0 for the period's first day
    date: dt.date
    start: float  # local midnight, Unix time
    working: bool
    short: bool  # the working day before a public holiday
    holiday_ahead: str | None  # a public holiday after only days off, within 4 days

    @property
    def end(self) -> float:
        return self.start + DAY_S

    @property
    def profile(self) -> Profile:
        """Where the office's mail of this day falls."""
        return (SHORT if self.short else WORK) if self.working else OFF

    def at(self, hour: float) -> float:
        """Unix time of a local hour of this day."""
        return self.start + hour * 3600.0


def make_days(start: dt.date, n: int) -> list[Day]:
    dates = [start + dt.timedelta(days=i) for i in range(n + 5)]
    named = holidays.country_holidays("KZ", years=sorted({d.year for d in dates}))
    working = [_CALENDAR.is_working_day(d) for d in dates]
    days: list[Day] = []
    for i in range(n):
        ahead: str | None = None
        for j in range(i + 1, i + 5):
            if working[j]:
                break
            if dates[j] in named:
                ahead = str(named.get(dates[j]))
                break
        short = working[i] and not working[i + 1] and dates[i + 1] in named
        midnight = dt.datetime(dates[i].year, dates[i].month, dates[i].day, tzinfo=ALMATY)
        days.append(Day(i, dates[i], midnight.timestamp(), working[i], short, ahead))
    return days


def draw_times(rng: random.Random, profile: Profile, n: int, start: float) -> list[float]:
    """n moments of the day beginning at `start`, spread as `profile` says (unsorted)."""
    rand = rng.random
    return [start + (b + rand()) * HALF_HOUR for b in rng.choices(_BINS, cum_weights=profile, k=n)]


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson count (normal approximation above 30)."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, mean**0.5)))
    limit, k, p = 2.718281828459045**-mean, 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
