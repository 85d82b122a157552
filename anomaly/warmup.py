"""When a connection's memory of senders and recipients has seen enough to call one new.

A detector that began listening on a Saturday has seen the weekend's few senders
by Sunday; on Monday every colleague back at work, writing to the people they
write to every week, would be a sender never seen writing to strangers: the
shape of an open relay's forged senders. The same holds for a node restarted on a
Friday evening or before a holiday. So a memory fills, counting nobody as new,
until `warm_ts(first_ts, since)`: a day after the connection's first event, and
not before the end of the first working day the detector saw whole since it began
listening at `since` (Asia/Almaty, by ugem.core.workdays: weekends, public
holidays and transferred days; a day is seen whole when listening began before
`OPENS_H` of it, before the office opens). A detector that began at midnight of a
working day warms each connection a day after its first event, as it always did.

Pure; nothing raises. A time the calendar cannot place (a trace may hold any
number: a year past 9999, before 1970) has no working day to wait for: its
memory warms a day after the connection's first event.
"""

from __future__ import annotations

import datetime as dt
import functools

from ugem.core.workdays import WorkCalendar, local_date, unix_time

LEAST_S = 86_400.0  # a day after the connection's first event at least
OPENS_H = 6  # listening from before this hour of a working day sees that day whole
_MOST_DAYS = 30  # a calendar with no working day in sight: stop looking after this
_CALENDAR = WorkCalendar()


def warm_ts(first_ts: float, since: float) -> float:
    """From when a connection first seen at `first_ts`, by a detector listening since
    `since`, counts senders and recipients as new (see the module)."""
    try:
        seen = _first_day_seen_ends(since)
    except (OverflowError, OSError, ValueError):  # no calendar places it (see the module)
        seen = since
    return max(first_ts + LEAST_S, seen)


@functools.lru_cache(maxsize=64)
def _first_day_seen_ends(since: float) -> float:
    """The end of the first working day seen whole by a detector listening since `since`."""
    day = local_date(since)
    if unix_time(dt.datetime.combine(day, dt.time(OPENS_H))) < since:
        day += dt.timedelta(days=1)  # began after the office opened: not seen whole
    for _ in range(_MOST_DAYS):
        if _CALENDAR.is_working_day(day):
            break
        day += dt.timedelta(days=1)
    return unix_time(dt.datetime.combine(day + dt.timedelta(days=1), dt.time()))
