"""The generator's report: nearest-rank percentiles, the tally's invariant, text and JSON."""

from __future__ import annotations

import json

import pytest

from loadtest.report import Latency, Report, Tally, percentile


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50.0
    assert percentile(values, 90) == 90.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 0.1) == 1.0


def test_percentile_of_few_values() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0  # rank ceil(2) = 2
    assert percentile([1.0, 2.0, 3.0, 4.0], 51) == 3.0  # rank ceil(2.04) = 3
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0


def test_latency_summary_in_milliseconds_from_unsorted_seconds() -> None:
    lat = Latency.of([0.003, 0.001, 0.010, 0.002])
    assert lat.count == 4
    assert lat.p50 == pytest.approx(2.0)
    assert lat.p90 == pytest.approx(10.0)
    assert lat.max == pytest.approx(10.0)
    assert lat.mean == pytest.approx(4.0)
    assert Latency.of([]) == Latency(0, None, None, None, None, None)


def _report(tally: Tally, elapsed: float = 2.0) -> Report:
    return Report.of(
        tally,
        elapsed,
        target="127.0.0.1:2525",
        run_id="r1",
        connections=2,
        per_connection=10,
        size="2048 bytes",
        rate="as fast as possible",
        started_at=1000.0,
        finished_at=1002.0,
    )


def _tally() -> Tally:
    tally = Tally()
    for n in range(6):
        tally.accept(f"r1-{n}", 2048, 0.001 * (n + 1))
    tally.refuse(554)
    tally.refuse(554)
    tally.refuse(451)
    tally.fail("timeout", "no reply in 60 s")
    tally.rcpt_refused.update([554, 554])
    return tally


def test_every_message_is_counted_once() -> None:
    report = _report(_tally())
    assert report.sent == 10
    assert report.sent == report.accepted + sum(report.refused.values()) + sum(
        report.failed.values()
    )
    assert report.refused == {451: 1, 554: 2}
    assert report.accept_rate == pytest.approx(3.0)  # 6 accepted over 2 s
    assert report.bytes_accepted == 6 * 2048


def test_json_has_plain_types_and_string_codes() -> None:
    data = json.loads(json.dumps(_report(_tally()).to_json()))
    assert data["refused"] == {"451": 1, "554": 2}
    assert data["rcpt_refused"] == {"554": 2}
    assert data["failed"] == {"timeout": 1}
    assert data["failure_examples"] == {"timeout": "no reply in 60 s"}
    assert set(data["latency_ms"]) == {"count", "p50", "p90", "p99", "max", "mean"}
    assert data["latency_ms"]["p99"] == pytest.approx(6.0)
    for key in ("sent", "accepted", "accept_rate", "elapsed", "started_at", "finished_at"):
        assert key in data


def test_text_names_each_figure() -> None:
    text = _report(_tally()).to_text()
    assert "sent 10, accepted 6, refused 3, failed 1" in text
    assert "451: 1, 554: 2" in text
    assert "3.0 msg/s over 2.00 s" in text
    assert "p50 3.0 ms  p90 6.0 ms  p99 6.0 ms  max 6.0 ms" in text


def test_a_run_with_nothing_accepted_reports_no_latency() -> None:
    tally = Tally()
    tally.refuse(554)
    report = _report(tally, elapsed=0.0)
    assert report.accept_rate == 0.0
    assert report.latency.count == 0
    assert "accept latency   none" in report.to_text()
