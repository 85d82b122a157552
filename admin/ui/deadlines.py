"""How long an application has until its decision is due, in working days.

`Deadline.of(app, today, calendar)` says, for a pending application, how many
working days are left until its `decision_due` (Asia/Almaty dates): the
working days after `today` up to and including the due day (0: due today),
or, past it, how many working days it is overdue (`overdue` true, `left` the
working days after the due day up to and including today). A decided
application has no deadline (None). The calendar is the service's
(`ugem.core.workdays.WorkCalendar`: weekends, holidays, moved days), so the
page counts as the service does. Pure; a due day of more than a year away or
ago is counted only to a year (`HORIZON`), which no application reaches.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ugem.core.services.applications import Application, AppState
from ugem.core.workdays import WorkCalendar

HORIZON = 366  # days counted at most


def working_days(after: dt.date, through: dt.date, calendar: WorkCalendar) -> int:
    """Working days in (after, through]; 0 when `through` is not after `after`."""
    days = min(max(0, (through - after).days), HORIZON)
    return sum(
        1 for n in range(1, days + 1) if calendar.is_working_day(after + dt.timedelta(days=n))
    )


@dataclass(frozen=True)
class Deadline:
    due: dt.date
    left: int  # working days left, or working days overdue when `overdue`
    overdue: bool

    @classmethod
    def of(cls, app: Application, today: dt.date, calendar: WorkCalendar) -> Deadline | None:
        if app.state != AppState.PENDING:
            return None
        due = dt.date.fromisoformat(app.decision_due)
        if app.overdue(today):
            return cls(due, working_days(due, today, calendar), True)
        return cls(due, working_days(today, due, calendar), False)
