"""Working days left until an application's decision is due, or overdue."""

from __future__ import annotations

import dataclasses
import datetime as dt

from admin.ui.deadlines import Deadline, working_days
from ugem.core.model import Language
from ugem.core.services.applications import Application, AppState, Channel
from ugem.core.workdays import WorkCalendar

CALENDAR = WorkCalendar(extra_days_off=[dt.date(2026, 3, 11)])  # a Wednesday off
APP = Application(
    "x", "1", "a.gov.kz", "o", (), "org", "state-body", (), Language.RU, Channel.APS,
    0.0, "2026-03-13", "test",
)  # fmt: skip  # due on a Friday


def test_working_days_skip_weekends_and_days_off() -> None:
    monday = dt.date(2026, 3, 9)
    assert working_days(monday, dt.date(2026, 3, 13), CALENDAR) == 3  # Tue, Thu, Fri
    assert working_days(monday, dt.date(2026, 3, 16), CALENDAR) == 4  # + Mon, not the weekend
    assert working_days(monday, monday, CALENDAR) == 0
    assert working_days(monday, dt.date(2026, 3, 1), CALENDAR) == 0


def test_a_pending_application_has_days_left_or_is_overdue() -> None:
    assert Deadline.of(APP, dt.date(2026, 3, 9), CALENDAR) == Deadline(
        dt.date(2026, 3, 13), 3, False
    )
    assert Deadline.of(APP, dt.date(2026, 3, 13), CALENDAR) == Deadline(
        dt.date(2026, 3, 13), 0, False
    )
    assert Deadline.of(APP, dt.date(2026, 3, 17), CALENDAR) == Deadline(
        dt.date(2026, 3, 13), 2, True
    )


def test_a_decided_application_has_no_deadline() -> None:
    decided = dataclasses.replace(APP, state=AppState.REJECTED)
    assert Deadline.of(decided, dt.date(2026, 3, 17), CALENDAR) is None
