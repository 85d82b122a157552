"""`ugem.core.times`: RFC 3339 in Asia/Almaty out, RFC 3339 / ISO 8601 or Unix time in."""

from __future__ import annotations

import datetime as dt

import pytest

from ugem.core.times import local_date, parse, rfc3339, unix_time

MOMENT = 1_796_637_845.25  # 2026-12-07T10:04:05.25Z


def test_a_moment_is_written_in_almaty_with_its_offset() -> None:
    assert rfc3339(MOMENT) == "2026-12-07T15:04:05+05:00"
    assert rfc3339(MOMENT, precise=True) == "2026-12-07T15:04:05.250000+05:00"
    assert dt.datetime.fromisoformat(rfc3339(MOMENT)).timestamp() == int(MOMENT)
    assert local_date(1_796_670_000.0) == dt.date(2026, 12, 8)  # 18:00Z is the next day there


def test_input_with_an_offset_is_honoured_and_without_one_is_almaty_time() -> None:
    assert parse("2026-12-07T15:04:05.25+05:00") == MOMENT
    assert parse("2026-12-07T10:04:05.25Z") == MOMENT
    assert parse("2026-12-07T15:04:05.25") == MOMENT  # no offset: Almaty
    assert parse(" 1796637845.25 ") == MOMENT  # Unix time in seconds
    assert unix_time(dt.datetime(2026, 12, 7, 15, 4, 5, 250000)) == MOMENT


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "nan", "inf", ""])
def test_what_is_not_a_time_is_refused_naming_what_is_taken(text: str) -> None:
    with pytest.raises(ValueError, match="not"):
        parse(text)
