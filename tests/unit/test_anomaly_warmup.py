"""A detector that began listening on a day off does not take Monday's office for forgers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from anomaly.detector import SUSPEND, Detector
from anomaly.replay import replay
from anomaly.simulate import SimOptions, simulate
from anomaly.trace_reader import read_trace
from anomaly.warmup import LEAST_S, warm_ts
from ugem.core.times import unix_time


def at(text: str) -> float:
    return unix_time(dt.datetime.fromisoformat(text))  # Asia/Almaty


@pytest.mark.parametrize(
    ("since", "warm"),
    [
        ("2026-03-02 00:00", "2026-03-03 00:00"),  # a Monday from midnight: a day, as before
        ("2026-03-02 05:59", "2026-03-03 05:59"),  # before the office opens: Monday seen whole
        ("2026-03-02 06:01", "2026-03-04 00:00"),  # after: Tuesday is the first seen whole
        ("2026-03-07 00:00", "2026-03-11 00:00"),  # Saturday; Monday 9 March is a day off
        ("2026-03-06 18:00", "2026-03-11 00:00"),  # a Friday evening's restart
        ("2026-12-15 18:00", "2026-12-18 00:00"),  # before Independence Day (16 December)
    ],
)
def test_warm_after_the_first_working_day_seen_whole(since: str, warm: str) -> None:
    assert warm_ts(at(since), at(since)) == at(warm)


def test_a_connection_first_seen_later_still_waits_a_day() -> None:
    since, first = at("2026-03-02 00:00"), at("2026-03-04 15:00")
    assert warm_ts(first, since) == first + LEAST_S


def test_office_mail_after_a_weekend_start_suspends_nobody(tmp_path: Path) -> None:
    """Normal traffic only (tagged list senders included), the detector listening from a
    Saturday: with a day's warm-up, Monday's colleagues were senders never seen writing
    to strangers and several connections were suspended."""
    options = SimOptions(seed=33, connections=40, days=4, start=dt.date(2026, 3, 7), abuse=False)
    prefix = tmp_path / "weekend"
    simulate(options, prefix)
    verdicts = list(replay(read_trace(Path(f"{prefix}.jsonl.gz"))))
    assert [v for v in verdicts if v.action == SUSPEND] == []


@pytest.mark.parametrize("ts", [1e20, -1e12, 253_402_300_800.0])  # past 9999, before 1970
def test_a_time_no_calendar_places_warms_a_day_after_and_never_raises(ts: float) -> None:
    assert warm_ts(ts, ts) == ts + LEAST_S
    Detector().accepted(ts, "odd.gov.kz", "a@odd.gov.kz", ["b@x.kz"])  # a trace may hold any
