"""Kazakhstan's working-day calendar: the deadlines of the Rules (five working days).

A day is a working day unless it is a Saturday or Sunday, a public holiday or
a day off the government transferred (the `holidays` package's calendar for
KZ), and a weekend day the government made a working day in exchange (the
other end of each transfer) is one. Dates are Asia/Almaty dates: a moment is
turned into the day it was there. `add_working_days(d, n)` counts n working
days after d, not d itself ("within five working days from the date of
receipt": received on a Monday, due the next Monday). `extra_days_off` and
`extra_working_days` cover a decree newer than the installed package. The
functions are pure and never raise for a valid date. `ALMATY`, `local_date` and
`unix_time` are `ugem.core.times`'s, kept here for their importers.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable

import holidays

from ugem.core.times import ALMATY, local_date, unix_time

__all__ = ["ALMATY", "WorkCalendar", "local_date", "preload", "unix_time"]
_WEEKEND = (5, 6)  # Saturday, Sunday


@functools.cache
def _year(year: int) -> tuple[frozenset[dt.date], frozenset[dt.date]]:
    """(days off, weekend days made working days) of one year, from `holidays`."""
    days_off = frozenset(holidays.country_holidays("KZ", years=year))
    working: set[dt.date] = set()
    for y in (year, year + 1):  # a transfer may take a working day from the year before
        found = holidays.country_holidays("KZ").special_public_holidays.get(y, ())
        entries = found if found and isinstance(found[0], tuple) else (found,)
        for entry in entries:
            if len(entry) in (4, 5) and all(isinstance(x, int) for x in entry):
                from_year = entry[4] if len(entry) == 5 else y
                day = dt.date(from_year, entry[2], entry[3])
                if day.year == year:
                    working.add(day)
    return days_off, frozenset(working)


def preload(ts: float) -> None:
    """Load the calendar of the year of `ts` and the next one now (blocking: call it in a
    thread). The `holidays` package imports its country module lazily, about 0.2 s on
    this machine: without this, the first working-day question stalls the event loop."""
    year = local_date(ts).year
    _year(year)
    _year(year + 1)


class WorkCalendar:
    def __init__(
        self,
        extra_days_off: Iterable[dt.date] = (),
        extra_working_days: Iterable[dt.date] = (),
    ) -> None:
        self.extra_days_off = frozenset(extra_days_off)
        self.extra_working_days = frozenset(extra_working_days)

    def is_working_day(self, day: dt.date) -> bool:
        if day in self.extra_working_days:
            return True
        if day in self.extra_days_off:
            return False
        days_off, working = _year(day.year)
        if day in working:
            return True
        return day.weekday() not in _WEEKEND and day not in days_off

    def add_working_days(self, start: dt.date, count: int) -> dt.date:
        """The `count`-th working day after `start` (start itself not counted)."""
        day, left = start, count
        while left > 0:
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                left -= 1
        return day
