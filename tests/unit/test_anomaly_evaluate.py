"""Scoring rules of TRACE-FORMAT.md on tiny hand-made traces, and the evaluate command."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from anomaly.detector import Verdict
from anomaly.evaluate import Incident, score
from anomaly.trace_reader import BOUNCED, Accepted, Bounced, Outcome, TraceEvent
from ugem.cli import main

C = "x.gov.kz"
INC = Incident(C, "compromised-mailbox", 1000.0, 2000.0)


def acc(ts: float, n: int = 1, conn: str = C) -> Accepted:
    return Accepted(ts, conn, "a@x.gov.kz", [f"r{i}@y.kz" for i in range(n)])


def sus(ts: float, conn: str = C) -> Verdict:
    return Verdict(ts, conn, "suspend", "test")


EVENTS: list[TraceEvent] = [acc(900, 5), acc(1000, 2), acc(1500, 3), acc(2000, 4), acc(2100, 7)]


def test_detected_with_time_and_leak_counted_per_message_until_suspension() -> None:
    result = score([INC], [sus(1600)], EVENTS)
    s = result.incidents[0]
    assert s.detected and s.time_to_detect == 600.0
    assert (s.leaked, s.total) == (5, 9)  # 2 + 3 before 1600; 2 + 3 + 4 within start..end
    assert result.false_suspensions == []


def test_detection_window_ends_600_s_after_the_incident() -> None:
    assert score([INC], [sus(2600)], EVENTS).incidents[0].detected
    late = score([INC], [sus(2601)], EVENTS)
    assert not late.incidents[0].detected
    assert late.incidents[0].leaked == 9  # no suspension in time: everything leaked
    assert late.false_suspensions == []  # still within end + 3600


def test_false_suspension_outside_start_to_end_plus_3600() -> None:
    result = score([INC], [sus(5601)], EVENTS)
    assert [v.ts for v in result.false_suspensions] == [5601]
    assert score([INC], [sus(5600)], EVENTS).false_suspensions == []
    other = score([INC], [sus(1500, "y.gov.kz")], EVENTS)
    assert len(other.false_suspensions) == 1 and not other.incidents[0].detected


def test_only_the_first_suspend_counts() -> None:
    result = score([INC], [sus(500), sus(1200)], EVENTS)
    assert not result.incidents[0].detected  # already suspended before it began
    assert result.incidents[0].leaked == 0
    assert len(result.false_suspensions) == 1


def test_throttle_is_reported_not_detection() -> None:
    result = score([INC], [Verdict(1100, C, "throttle", "t")], EVENTS)
    assert not result.incidents[0].detected and result.totals()["throttles"] == 1


def _throttle(ts: float, cap: float) -> Verdict:
    return Verdict(ts, C, "throttle", "t", 6.0, cap)


BURST: list[TraceEvent] = [acc(1000 + 10 * i, 4) for i in range(20)]  # 80 in 200 s


def test_a_throttle_that_ends_in_the_suspension_holds_what_is_over_its_cap() -> None:
    # Throttled at 1050 with a cap of 10 per 5 min: the messages of 1000-1040 (20) are
    # already over it, so everything from 1050 on is held until the suspension at 1150.
    s = score([INC], [_throttle(1050, 10.0), sus(1150)], BURST).incidents[0]
    assert (s.leaked, s.held) == (60, 40)  # 15 messages before 1150; 10 of them held


def test_under_its_cap_a_throttled_connection_is_let_through() -> None:
    s = score([INC], [_throttle(1000, 30.0), sus(1150)], BURST).incidents[0]
    assert (s.leaked, s.held) == (60, 28)  # the first 8 messages (32) reached the cap of 30


def test_what_a_lifted_throttle_held_was_only_delayed() -> None:
    lifted = Verdict(1150, C, "lift", "quiet")
    s = score([INC], [_throttle(1050, 10.0), lifted], BURST).incidents[0]
    assert (s.leaked, s.held) == (80, 0)  # the sender's queue delivers it after the lift


def test_the_cap_counts_the_last_5_minutes_only() -> None:
    steady = [acc(1000 + 100 * i, 8) for i in range(10)]  # 8 every 100 s, cap 10 per 300 s
    s = score([INC], [_throttle(1000, 10.0), sus(2000)], steady).incidents[0]
    # 1000 and 1100 let through (16), so 1200 is held; 1000 leaves the window, 1300 and
    # 1400 pass, 1500 is held; and so on: every third message held.
    assert (s.leaked, s.held) == (80, 24)


def test_totals_add_up() -> None:
    other = Incident("y.gov.kz", "mail-loop", 1000.0, 2000.0)
    events = [*EVENTS, acc(1100, 10, "y.gov.kz")]
    totals = score([INC, other], [sus(1600), sus(9000, "z.gov.kz")], events).totals()
    assert totals["detected"] == 1 and totals["incidents"] == 2
    assert totals["leaked"] == 5 + 10 and totals["leaked_of"] == 9 + 10
    assert totals["leaked_pct"] == round(100 * 15 / 19, 2)
    assert totals["median_time_to_detect"] == 600.0 and totals["false_suspensions"] == 1


def _write_trace(path: Path, events: list[dict[str, object]]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")


def test_evaluate_command_on_a_small_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = {"connection": C, "ip": "10.0.0.1"}
    lines: list[dict[str, object]] = []
    for i in range(60):  # an hour of one message a minute, all delivered
        ts = 1_000_000.0 + 60 * i
        lines.append(
            {
                **base,
                "ts": ts,
                "event": "accepted",
                "sender": "a@x.gov.kz",
                "rcpts": ["b@y.kz"],
                "size": 100,
            }
        )
        lines.append({**base, "ts": ts + 1, "event": "delivered", "rcpt": "b@y.kz", "code": 250})
    start = 1_003_600.0
    for i in range(200):  # then a burst to unknown recipients
        ts = start + 2 * i
        rcpt = f"u{i}@d{i}.kz"
        lines.append(
            {
                **base,
                "ts": ts,
                "event": "accepted",
                "sender": "a@x.gov.kz",
                "rcpts": [rcpt],
                "size": 100,
            }
        )
        lines.append({**base, "ts": ts + 1, "event": "bounced", "rcpt": rcpt, "code": 550})
    trace, labels = tmp_path / "t.jsonl.gz", tmp_path / "t.labels.json"
    _write_trace(trace, lines)
    incident = {"connection": C, "kind": "compromised-mailbox", "start": start, "end": start + 400}
    labels.write_text(json.dumps({"period": [0, 2e6], "connections": [C], "incidents": [incident]}))
    assert main(["anomaly", "evaluate", str(trace), str(labels)]) == 0
    out = json.loads(capsys.readouterr().out)
    totals = out["totals"]
    assert totals["detected"] == 1 and totals["false_suspensions"] == 0
    assert 0 < totals["leaked"] < totals["leaked_of"] == 200
    assert out["incidents"][0]["time_to_detect"] < 120
    assert main(["anomaly", "replay", str(trace)]) == 0
    actions = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert actions and all(set(a) == {"ts", "connection", "action", "reason"} for a in actions)
    *before, last = actions  # perhaps throttled first; suspended in the end, then not judged
    assert all(a["action"] == "throttle" and a["ts"] <= last["ts"] for a in before)
    assert last["action"] == "suspend" and start <= last["ts"] < start + 120
    assert re.search(r"\d+ of \d+ deliveries in 5 min bounced as unknown users", last["reason"])


def test_outcome_kinds_are_typed() -> None:
    o = Bounced(1.0, C, 550)
    assert isinstance(o, Outcome) and o.kind == BOUNCED
    assert score([INC], [], [o]).incidents[0].total == 0  # outcomes are not recipients sent
