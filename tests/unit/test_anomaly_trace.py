"""The trace reader: plain and gzipped files, unknown events skipped, bad lines refused.

Lines are decoded a block at a time; small blocks (patched) show that a skipped
event or a bad line is still named by its line in the file, wherever it falls.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import pytest

import anomaly.trace_reader
from anomaly.trace_reader import (
    DEFERRED,
    Accepted,
    Bounced,
    Deferred,
    Delivered,
    TraceStats,
    read_blocks,
    read_trace,
)
from ugem.core.errors import UsageError

LINES = [
    b'{"ts":1.5,"connection":"x.kz","ip":"10.0.0.1","event":"accepted","sender":"",'
    b'"rcpts":["a@y.kz","b@z.kz"],"size":10,"extra":1}',
    b'{"ts":2,"connection":"x.kz","ip":"10.0.0.1","event":"greylisted","rcpt":"a@y.kz"}',
    b'{"ts":3,"connection":"x.kz","ip":"10.0.0.1","event":"deferred","rcpt":"a@y.kz","code":451}',
]


def _line(ts: int, event: str = "delivered") -> bytes:
    return (
        b'{"ts":%d,"connection":"x.kz","ip":"10.0.0.1","event":"%s","rcpt":"a@y.kz","code":250}'
        % (ts, event.encode())
    )


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
        Accepted(1.5, "x.kz", "", ["a@y.kz", "b@z.kz"], "10.0.0.1", 10),
        Deferred(3, "x.kz", 451, "a@y.kz"),
    ]
    assert isinstance(events[1], Deferred) and events[1].kind == DEFERRED
    assert stats.skipped == {"greylisted": 1} and stats.events == 3
    warnings = [r for r in caplog.records if r.getMessage() == "trace_unknown_event"]
    assert [r.__dict__["fields"]["event_name"] for r in warnings] == ["greylisted"]
    assert warnings[0].__dict__["fields"]["line"] == 2


def test_a_line_missing_a_field_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(LINES[0] + b"\n" + b'{"ts":2,"event":"accepted"}\n')
    with pytest.raises(UsageError, match=r"t\.jsonl:2"):
        list(read_trace(path))


def test_a_field_of_the_wrong_type_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(_line(1) + b"\n" + _line(2).replace(b"250", b'"250"') + b"\n")
    with pytest.raises(UsageError, match=r"t\.jsonl:2: not a trace event"):
        list(read_trace(path))


def test_lines_are_numbered_across_blocks_and_blank_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(anomaly.trace_reader, "_PLAIN_CHUNK", 300)  # a few lines a block
    lines = [_line(ts) for ts in range(40)]
    lines[5:5] = [b"", b"   "]  # blank lines 6 and 7 count as lines
    lines[30] = _line(30, "greylisted")  # line 31
    lines[35] = b"{not json"  # line 36
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with caplog.at_level(logging.WARNING), pytest.raises(UsageError, match=r"t\.jsonl:36:"):
        list(read_trace(path))
    warning = next(r for r in caplog.records if r.getMessage() == "trace_unknown_event")
    assert warning.__dict__["fields"]["line"] == 31


def test_blocks_hold_every_event_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(anomaly.trace_reader, "_PLAIN_CHUNK", 500)
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\n".join(_line(ts, "bounced") for ts in range(50)))  # no final newline
    blocks = list(read_blocks(path))
    assert len(blocks) > 5
    assert [e for block in blocks for e in block] == [
        Bounced(ts, "x.kz", 250, "a@y.kz") for ts in range(50)
    ]


def test_every_gzip_member_is_read(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(gzip.compress(_line(1) + b"\n") + gzip.compress(_line(2) + b"\n"))
    assert list(read_trace(path)) == [Delivered(t, "x.kz", 250, "a@y.kz") for t in (1, 2)]


@pytest.mark.parametrize("data", [b"not gzip at all", gzip.compress(_line(1) * 200)[:-20]])
def test_a_file_that_is_not_gzip_or_is_cut_short_is_a_usage_error(
    tmp_path: Path, data: bytes
) -> None:
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(data)
    with pytest.raises(UsageError, match="cannot read the trace"):
        list(read_trace(path))


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        list(read_trace(tmp_path / "none.jsonl"))
