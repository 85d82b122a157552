"""The red team's simulator (`ugem anomaly simulate`): determinism, format, labels, shape.

Small runs only (a few connections, a few days): each takes about a second.
The events' internal tags (0 normal, else the incident's number) tell which
events the generator made abusive, so the labels are checked against them.
"""

from __future__ import annotations

import datetime as dt
import gzip
import itertools
import json
import logging
from collections import Counter
from pathlib import Path

import pytest

from anomaly.sim_abuse import KINDS
from anomaly.sim_events import ABUSE_TRAIL_S, AcceptedLine, Event
from anomaly.simulate import SimOptions, Simulation, simulate
from anomaly.trace_reader import Accepted, TraceStats, read_trace
from tests.support.cli import Result, usage_error
from ugem.cli import main
from ugem.core.workdays import ALMATY, WorkCalendar

ALL_KINDS = tuple(KINDS)


def run(options: SimOptions) -> tuple[Simulation, list[Event]]:
    sim = Simulation(options)
    events = [e for batch in sim.batches() for e in batch]
    return sim, events


@pytest.fixture(scope="module")
def every_kind() -> tuple[Simulation, list[Event]]:
    """12 connections, 4 days, so many incidents a week that every kind comes."""
    return run(SimOptions(seed=7, connections=12, days=4, per_week=400.0))


def test_same_options_same_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    options = SimOptions(seed=5, connections=4, days=3, per_week=200.0)
    a = simulate(options, tmp_path / "a")
    b = simulate(options, tmp_path / "b")
    assert a.trace.read_bytes() == b.trace.read_bytes()
    assert a.labels.read_bytes() == b.labels.read_bytes()
    assert a.incidents > 0
    c = simulate(SimOptions(seed=6, connections=4, days=3, per_week=200.0), tmp_path / "c")
    assert c.trace.read_bytes() != a.trace.read_bytes()


def test_the_trace_is_sorted_and_read_back_without_warnings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    summary = simulate(SimOptions(seed=2, connections=5, days=2, per_week=300.0), tmp_path / "t")
    stats = TraceStats()
    with caplog.at_level(logging.WARNING):
        events = list(read_trace(summary.trace, stats))
    assert not caplog.records and not stats.skipped
    assert len(events) == stats.events == summary.events > 1000
    times = [e.ts for e in events]
    assert times == sorted(times)
    labels = json.loads(summary.labels.read_text())
    start, end = labels["period"]
    assert start <= times[0] and times[-1] < end
    assert set(labels) == {"period", "connections", "incidents"}
    assert {e.connection for e in events} <= set(labels["connections"])
    first = json.loads(gzip.decompress(summary.trace.read_bytes()).split(b"\n")[0])
    assert list(first)[:4] == ["ts", "connection", "ip", "event"]


def test_labels_span_exactly_the_abusive_events(every_kind: tuple[Simulation, list[Event]]) -> None:
    sim, events = every_kind
    records = {r.number: r for r in sim.incidents()}
    accepted: dict[int, list[float]] = {}
    for ts, line, tag in events:
        if not tag:
            continue
        record = records[tag]
        assert line.connection == record.connection
        if isinstance(line, AcceptedLine):
            accepted.setdefault(tag, []).append(ts)
        else:
            assert record.start <= ts <= record.end + ABUSE_TRAIL_S
    for number, record in records.items():
        assert min(accepted[number]) == record.start
        assert max(accepted[number]) == record.end
        assert len(accepted[number]) == record.messages
    assert sim.labels()["incidents"] == [
        {"connection": r.connection, "kind": r.kind, "start": r.start, "end": r.end}
        for r in sim.incidents()
    ]


def test_incidents_of_one_connection_never_overlap(
    every_kind: tuple[Simulation, list[Event]],
) -> None:
    sim, _ = every_kind
    by_conn: dict[str, list[tuple[float, float]]] = {}
    for r in sim.incidents():
        by_conn.setdefault(r.connection, []).append((r.start, r.end))
    for spans in by_conn.values():
        spans.sort()
        assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))
    assert max(len(s) for s in by_conn.values()) > 1  # the check had something to check


def test_every_kind_comes_in_a_run_of_all_kinds(every_kind: tuple[Simulation, list[Event]]) -> None:
    sim, _ = every_kind
    assert {r.kind for r in sim.incidents()} == set(ALL_KINDS)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_each_kind_alone_makes_incidents_of_that_kind(kind: str) -> None:
    sim, events = run(SimOptions(seed=11, connections=2, days=3, kinds=(kind,), per_week=300.0))
    made = sim.incidents()
    assert made and {r.kind for r in made} == {kind}
    assert all(r.messages >= 1 for r in made)
    assert any(tag for _, _, tag in events)


def test_exclude_kinds_leaves_the_kind_out() -> None:
    left_out = ("compromised-mailbox", "mail-loop")
    sim, _ = run(SimOptions(seed=7, connections=12, days=4, per_week=400.0, exclude=left_out))
    kinds = {r.kind for r in sim.incidents()}
    assert kinds == set(ALL_KINDS) - set(left_out)


def test_no_abuse_makes_no_incident() -> None:
    sim, events = run(SimOptions(seed=3, connections=4, days=3, abuse=False, per_week=500.0))
    assert sim.incidents() == [] and not any(tag for _, _, tag in events)


def _local(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, ALMATY)


def test_normal_mail_is_written_in_working_hours_of_working_days(
    every_kind: tuple[Simulation, list[Event]],
) -> None:
    _, events = every_kind  # 2026-03-02 (Monday) to 03-05
    normal = [_local(ts) for ts, line, tag in events if not tag and isinstance(line, AcceptedLine)]
    office = [t for t in normal if 9 <= t.hour < 19]
    assert len(office) > 0.7 * len(normal)
    by_hour = Counter(t.hour for t in normal)
    assert by_hour[10] > 2 * by_hour[8]  # the day starts at 9
    assert by_hour[13] < by_hour[11] and by_hour[13] < by_hour[15]  # the lunch dip
    assert by_hour[3] < 0.1 * by_hour[10]


def test_weekends_and_holidays_are_quiet() -> None:
    # 2026-03-19 (Thursday) .. 03-26: the 21st-25th are Nauryz and its transfers
    _, events = run(SimOptions(seed=4, connections=6, days=8, start=dt.date(2026, 3, 19)))
    per_day = Counter(
        _local(ts).date() for ts, line, tag in events if not tag and isinstance(line, AcceptedLine)
    )
    calendar = WorkCalendar()
    working = [n for d, n in per_day.items() if calendar.is_working_day(d)]
    off = [per_day[dt.date(2026, 3, d)] for d in (23, 24, 25)]  # Monday to Wednesday, off
    assert len(working) == 3 and not calendar.is_working_day(dt.date(2026, 3, 23))
    assert max(off) < 0.3 * min(working)


def test_the_command_writes_both_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = tmp_path / "sim"
    code = main(
        ["anomaly", "simulate", "--seed", "2", "--connections", "3", "--days", "2",
         "--kinds", "open-relay,mail-loop", "--incidents-per-week", "500", "--out", str(prefix)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "3 connections" in out
    labels = json.loads(Path(f"{prefix}.labels.json").read_text())
    assert {i["kind"] for i in labels["incidents"]} <= {"open-relay", "mail-loop"}
    assert labels["incidents"]
    assert any(isinstance(e, Accepted) for e in read_trace(Path(f"{prefix}.jsonl.gz")))


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["--connections", "2001"], "--connections"),
        (["--days", "0"], "--days"),
        (["--days", "three"], "--days"),
        (["--kinds", "spam"], "--kinds"),
        (["--exclude-kinds", "open-relay,nope"], "--exclude-kinds"),
        (["--start", "2026-02-30"], "--start"),
        (["--incidents-per-week", "-1"], "--incidents-per-week"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_bad_options_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], option: str
) -> None:
    code = main(["anomaly", "simulate", "--out", str(tmp_path / "x"), *argv])
    captured = capsys.readouterr()
    usage_error(Result(code, captured.out, captured.err), option)
    assert not list(tmp_path.iterdir())
