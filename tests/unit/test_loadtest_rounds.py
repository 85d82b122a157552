"""Repeated comparisons (`compare --repeat N`) and the whole set (`compare --set full`):
the order of the rounds alternates, medians and ranges are taken over the runs that have
the figure, the ratios divide medians, the reports keep every run; the set's loads and the
settings that let 500 connections in; the command line's new options.

No relay runs here (see tests/integration/test_loadtest_repeat.py for a real one).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from loadtest import full_set, restart
from loadtest.__main__ import main
from loadtest.commands import add_compare, compare_command, full_set_options
from loadtest.compare import CompareOptions, Measurement
from loadtest.report import Report, Tally
from loadtest.rounds import Entry, Rounds, Spread, render_json, render_text, round_order


def _run(name: str, e2e: float, latency: float | None = 0.01) -> Measurement:
    """A run of 1000 messages whose end-to-end rate is `e2e` (accepted over 1 s); no
    latencies when `latency` is None (as with smtp-source)."""
    tally = Tally()
    for n in range(1000 if latency is not None else 0):
        tally.accept(f"{name}-{n}", 2048, latency or 0.0)
    report = Report.of(
        tally, 1.0, target="t", run_id=name, connections=50, per_connection=100,
        size="2048 bytes", rate="as fast as possible", started_at=1000.0, finished_at=1001.0,
    )  # fmt: skip
    sink = {"messages": 1000, "last_arrival": 1000.0 + 1000 / e2e, "lost": 0, "duplicates": 0}
    return Measurement(name, name.upper(), report, sink, busy_before=0.02)


def _rounds(postfix: list[float], ugem: list[float]) -> Rounds:
    runs = {
        "postfix": [_run("postfix", r) for r in postfix],
        "ugem": [_run("ugem", r) for r in ugem],
    }
    orders = [round_order(("postfix", "ugem"), i) for i in range(len(postfix))]
    return Rounds(CompareOptions(messages=1000), ("postfix", "ugem"), orders, runs)


def test_the_order_alternates_between_rounds() -> None:
    labels = ("postfix", "haraka", "ugem")
    assert [round_order(labels, i) for i in range(3)] == [
        ["postfix", "haraka", "ugem"],
        ["ugem", "haraka", "postfix"],
        ["postfix", "haraka", "ugem"],
    ]


def test_median_and_range_over_the_runs_that_have_the_figure() -> None:
    assert Spread.of([300.0, 100.0, None, 200.0, 500.0, 400.0]) == Spread(300.0, 100.0, 500.0, 5)
    assert Spread.of([1.0, 4.0]) == Spread(2.5, 1.0, 4.0, 2)  # even count: the middle two
    assert Spread.of([None, None]) is None
    assert Spread(2.5, 1.0, 4.0, 2).text() == "2.5 [1.0..4.0]"
    assert Spread(7.0, 7.0, 7.0, 1).text() == "7.0"


def test_ratios_divide_the_medians() -> None:
    rounds = _rounds([300.0, 400.0, 350.0], [600.0, 900.0, 700.0])
    e2e = rounds.spread("ugem", "e2e")
    assert e2e is not None and e2e.median == pytest.approx(700.0)
    assert (e2e.low, e2e.high, e2e.count) == pytest.approx((600.0, 900.0, 3))
    ratios = rounds.ratios()
    assert list(ratios) == ["ugem / postfix"]
    assert ratios["ugem / postfix"]["e2e"] == pytest.approx(2.0)  # 700 / 350
    assert ratios["ugem / postfix"]["p50"] == pytest.approx(1.0)


def test_text_shows_medians_ranges_and_ratios() -> None:
    text = render_text(_rounds([300.0, 400.0, 350.0], [600.0, 900.0, 700.0]))
    assert "Medians of 3 rounds [min-max]; each round in turn: postfix, ugem, then reversed" in text
    row = next(line for line in text.splitlines() if line.startswith("end to end"))
    assert "350.0 [300.0..400.0]" in row and "700.0 [600.0..900.0]" in row and "2.00" in row
    assert "ugem / postfix" in text and "lost (all runs)" in text and "2%-2%" in text


def test_json_keeps_every_run() -> None:
    data = json.loads(json.dumps(render_json(_rounds([300.0, 400.0], [600.0, 900.0]))))
    assert data["repeat"] == 2
    assert [r["order"] for r in data["rounds"]] == [["postfix", "ugem"], ["ugem", "postfix"]]
    assert data["rounds"][1]["runs"]["ugem"]["end_to_end_rate"] == pytest.approx(900.0)
    assert data["summary"]["ugem"]["e2e"] == pytest.approx(
        {"median": 750.0, "min": 600.0, "max": 900.0, "n": 2}
    )
    assert data["summary"]["ugem"]["version"] == "UGEM"
    assert data["ratios"]["ugem / postfix"]["e2e"] == pytest.approx(750.0 / 350.0)


def test_figures_no_run_measured_are_dashes() -> None:
    runs = {"postfix": [_run("postfix", 300.0, None)], "ugem": [_run("ugem", 600.0, None)]}
    rounds = Rounds(CompareOptions(), ("postfix", "ugem"), [["postfix", "ugem"]], runs)
    assert rounds.spread("ugem", "p99") is None
    row = next(line for line in render_text(rounds).splitlines() if "p99" in line)
    assert row.split()[-3:] == ["-", "-", "-"]
    assert "One run each, in turn: postfix, ugem" in render_text(rounds)


def test_an_entry_names_its_runs() -> None:
    entry = Entry("ugem-dkim", "ugem", CompareOptions(), tag="DKIM RSA-2048")
    named = entry.named(_run("ugem", 500.0))
    assert (named.name, named.version) == ("ugem-dkim", "UGEM, DKIM RSA-2048")


def test_the_full_set_s_headline_and_caps(tmp_path: Path) -> None:
    options = full_set.FullOptions(out=tmp_path / "r.json")
    entries = full_set.headline_entries(options, tmp_path / "keys")
    assert [e.label for e in entries] == ["postfix", "haraka", "ugem", "ugem-2w", "ugem-dkim"]
    shape = entries[0].options
    assert (shape.messages, shape.connections, shape.per_connection) == (6000, 50, 1)
    assert (shape.driver, shape.sink, shape.size.a) == ("smtp-source", "smtp-sink", 2048)
    assert entries[3].options.workers == 2
    key_dir = entries[4].options.ugem_overrides["dkim"]["key_dir"]
    assert json.loads(key_dir) == str(tmp_path / "keys")
    wide = full_set.connections_point(options, 500, 3000)
    assert wide.ugem_overrides["smtp"] == {
        "max_connections": "2000",
        "max_connections_per_ip": "500",
    }
    assert wide.postfix_overrides["default_process_limit"] == "500"
    assert (wide.connections, wide.driver) == (500, "python")
    assert full_set.size_point(options, 1024 * 1024, 100).size.a == 1024 * 1024


def test_the_command_line_s_repeat_and_set(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["compare", "--repeat", "0"])
    parser = argparse.ArgumentParser()
    add_compare(parser.add_subparsers())
    out = tmp_path / "full" / "report.json"
    args = parser.parse_args(
        ["compare", "--set", "queue", "--queue-messages", "1000000", "--out", str(out)]
    )
    assert args.handler is compare_command and args.peer == "postfix"
    options = full_set_options(args)
    assert (options.parts, options.queue_messages, options.out) == (("queue",), 1_000_000, out)
    args = parser.parse_args(["compare", "--set", "full", "--ugem-set", "smtp.x=1"])
    options = full_set_options(args)
    assert options.parts == full_set.PARTS and options.repeat == 5
    assert options.ugem_overrides == {"smtp": {"x": "1"}}


def test_the_queue_part_reports_the_node_s_memory() -> None:
    fill = _run("restart", 800.0).report
    result = restart.RestartResult(
        restart.RestartOptions(messages=1000), fill, {"deferred": 1000}, 0, 0.5, "made due",
        1.0, 1.2, 3.0, {"messages": 1000, "unique_ids": 1000, "lost": 0, "duplicates": 0},
        {"full": 204800, "ready": 102400, "delivered": None},
    )  # fmt: skip
    assert "memory (RSS)       full queue 200.0 MiB, ready 100.0 MiB" in restart.render_text(result)
    assert restart.render_json(result)["rss_kib"]["ready"] == 102400
