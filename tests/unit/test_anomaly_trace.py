"""The trace reader: plain and gzipped files, unknown events skipped, bad lines refused."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import pytest

from anomaly.trace import DEFERRED, Accepted, Outcome, TraceStats, read_trace
from ugem.errors import UsageError

LINES = [
    b'{"ts":1.5,"connection":"x.kz","ip":"10.0.0.1","event":"accepted","sender":"",'
    b'"rcpts":["a@y.kz","b@z.kz"],"size":10,"extra":1}',
    b'{"ts":2,"connection":"x.kz","ip":"10.0.0.1","event":"greylisted","rcpt":"a@y.kz"}',
    b'{"ts":3,"connection":"x.kz","ip":"10.0.0.1","event":"deferred","rcpt":"a@y.kz","code":451}',
]


@pytest.mark.parametrize("name", ["t.jsonl", "t.jsonl.gz"])
def test_reads_events_and_skips_unknown_with_a_warning(
    tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / name
    data = b"\n".join(LINES) + b"\n"
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    stats = TraceStats()
    with caplog.at_level(logging.WARNING):
        events = list(read_trace(path, stats))
    assert events == [
        Accepted(1.5, "x.kz", "10.0.0.1", "", ["a@y.kz", "b@z.kz"]),
        Outcome(3, "x.kz", "10.0.0.1", DEFERRED, "a@y.kz", 451),
    ]
    assert stats.skipped == {"greylisted": 1} and stats.lines == 3
    warnings = [r for r in caplog.records if r.getMessage() == "trace_unknown_event"]
    assert [r.__dict__["fields"]["event_name"] for r in warnings] == ["greylisted"]


def test_a_line_missing_a_field_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(LINES[0] + b"\n" + b'{"ts":2,"event":"accepted"}\n')
    with pytest.raises(UsageError, match=r"t\.jsonl:2"):
        list(read_trace(path))


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        list(read_trace(tmp_path / "none.jsonl"))
