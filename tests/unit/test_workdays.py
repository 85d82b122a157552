"""The five-working-day deadline by Kazakhstan's calendar, in Asia/Almaty time.

Across a weekend, across Independence Day (16 December), across the New Year
holidays with the government's transfer of 2025 (Friday 3 January a day off,
Sunday 5 January a working day), and a receipt late in the UTC evening that
is already the next day in Almaty.
"""

from __future__ import annotations

import datetime as dt

import pytest

from ugem.core.workdays import WorkCalendar, local_date

CAL = WorkCalendar()


@pytest.mark.parametrize(
    ("received", "due"),
    [
        ("2026-02-05", "2026-02-12"),  # Thursday: Fri, Mon, Tue, Wed, Thu
        ("2026-02-06", "2026-02-13"),  # Friday: the weekend is skipped
        ("2026-02-07", "2026-02-13"),  # received on a Saturday (APS): Mon..Fri
        ("2026-12-14", "2026-12-22"),  # Tue 15, [Wed 16 Independence Day], 17, 18, 21, 22
        ("2025-12-30", "2026-01-09"),  # Wed 31, [1, 2 Jan, weekend], 5, 6, [7 Christmas], 8, 9
        ("2024-12-30", "2025-01-09"),  # 31, [1, 2, 3 (transferred), Sat 4], Sun 5 works, 6, 8, 9
    ],
)
def test_five_working_days_after_receipt(received: str, due: str) -> None:
    start = dt.date.fromisoformat(received)
    assert CAL.add_working_days(start, 5) == dt.date.fromisoformat(due)


def test_the_days_of_a_transfer_and_a_holiday() -> None:
    assert not CAL.is_working_day(dt.date(2026, 12, 16))  # Independence Day
    assert not CAL.is_working_day(dt.date(2025, 1, 3))  # Friday, a day off by transfer
    assert CAL.is_working_day(dt.date(2025, 1, 5))  # Sunday, a working day by transfer
    assert not CAL.is_working_day(dt.date(2026, 2, 7))  # a plain Saturday
    assert CAL.is_working_day(dt.date(2026, 2, 9))  # a plain Monday


def test_the_date_of_receipt_is_the_almaty_date() -> None:
    evening_utc = dt.datetime(2026, 2, 5, 20, 0, tzinfo=dt.UTC).timestamp()
    assert local_date(evening_utc) == dt.date(2026, 2, 6)  # 01:00 in Almaty (UTC+5)
    assert CAL.add_working_days(local_date(evening_utc), 5) == dt.date(2026, 2, 13)


def test_a_newer_decree_can_be_added_by_hand() -> None:
    extra = WorkCalendar(
        extra_days_off=[dt.date(2026, 2, 9)], extra_working_days=[dt.date(2026, 2, 7)]
    )
    assert not extra.is_working_day(dt.date(2026, 2, 9))
    assert extra.add_working_days(dt.date(2026, 2, 6), 2) == dt.date(2026, 2, 10)


def test_preload_leaves_nothing_for_the_first_question_to_load() -> None:
    from ugem.core import workdays

    workdays._year.cache_clear()
    workdays.preload(1_767_225_600.0)  # 2026-01-01 in Almaty
    loaded = workdays._year.cache_info()
    assert loaded.currsize == 2
    workdays.WorkCalendar().is_working_day(dt.date(2026, 12, 16))
    workdays.WorkCalendar().is_working_day(dt.date(2027, 1, 2))
    assert workdays._year.cache_info().misses == loaded.misses  # both years were ready
