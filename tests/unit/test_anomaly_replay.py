"""Replay split across processes: the same actions, in the same order, as one process.

A small generated trace (a few connections of steady traffic, three of which
turn abusive, two of them at the very same instants) is replayed in one
process and in two and three, also with connections first seen after the
events the shares are balanced on; the shares are balanced deterministically;
a worker that dies has its share run again in the parent; `--jobs` is checked.
"""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path

import pytest

import anomaly.replay
import anomaly.trace_reader
from anomaly.detector import DEFAULT_THRESHOLDS, Thresholds
from anomaly.replay import (
    _preload_calendar,
    _replay_share,
    _Share,
    action_line,
    balance,
    replay,
    replay_file,
    share_of,
)
from anomaly.trace_reader import Accepted, TraceEvent, TraceStats, read_blocks, read_trace
from ugem.cli import main
from ugem.core import workdays

START = 1_796_065_200.0  # a Monday, 09:00 in Asia/Almaty
CONNECTIONS = [f"c{i}.gov.kz" for i in range(7)]
TWINS = ("c1.gov.kz", "c4.gov.kz")  # abusive at the same instants
LOOPER = "c2.gov.kz"


def _accepted(ts: float, conn: str, sender: str, rcpts: list[str]) -> dict[str, object]:
    ip = "10.0.0.1"
    return {"ts": ts, "connection": conn, "ip": ip, "event": "accepted", "sender": sender,
            "rcpts": rcpts, "size": 1000}  # fmt: skip


def _outcome(ts: float, conn: str, rcpt: str, code: int) -> dict[str, object]:
    name = "delivered" if code < 400 else "deferred" if code < 500 else "bounced"
    return {"ts": ts, "connection": conn, "ip": "10.0.0.1", "event": name, "rcpt": rcpt,
            "code": code}  # fmt: skip


def _steady(rng: random.Random, conn: str, hours: float) -> list[dict[str, object]]:
    events, ts = [], START + rng.uniform(0, 60)
    while ts < START + hours * 3600:
        rcpts = [f"u{rng.randrange(40)}@d{rng.randrange(9)}.kz" for _ in range(rng.randint(1, 3))]
        events.append(_accepted(ts, conn, f"s{rng.randrange(5)}@{conn}", rcpts))
        events += [_outcome(ts + 1.5, conn, r, 250) for r in rcpts]
        ts += rng.uniform(20, 120)
    return events


def _abuse(at: float) -> list[dict[str, object]]:
    events = []
    for i in range(300):  # the twins: unknown recipients, at the same instants
        ts = at + 2 * i
        for conn in TWINS:
            rcpt = f"x{i}@n{i % 97}.kz"
            events += [_accepted(ts, conn, f"s0@{conn}", [rcpt]), _outcome(ts + 1, conn, rcpt, 550)]
        events.append(_accepted(ts + 0.5, LOOPER, f"s1@{LOOPER}", ["back@mirror.kz"]))
    return events


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(5)
    events = [e for c in CONNECTIONS if c != TWINS[1] for e in _steady(rng, c, 3.0)]
    twin = [e for e in events if e["connection"] == TWINS[0]]
    events += [{**e, "connection": TWINS[1]} for e in twin]  # the same history, later in the file
    events += _abuse(START + 2.5 * 3600)
    events.sort(key=lambda e: float(e["ts"]))  # type: ignore[arg-type]
    path = tmp_path_factory.mktemp("trace") / "t.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(e) + "\n" for e in events)
    return path


def test_the_trace_gives_actions_with_a_tie_in_time(trace: Path) -> None:
    verdicts = list(replay(read_trace(trace)))
    assert {v.connection for v in verdicts} == {*TWINS, LOOPER}
    twins = [v for v in verdicts if v.connection in TWINS]
    assert twins[0].ts == twins[1].ts  # only the event order tells them apart


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_split_replay_gives_the_same_actions_in_the_same_order(trace: Path, jobs: int) -> None:
    stats = TraceStats()
    assert replay_file(trace, jobs, stats) == list(replay(read_trace(trace)))
    assert stats.events == sum(1 for _ in read_trace(trace))


@pytest.mark.parametrize("jobs", [2, 3])
def test_connections_first_seen_after_the_balanced_events_give_the_same_actions(
    trace: Path, jobs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(anomaly.trace_reader, "_GZ_CHUNK", 64)  # a few lines a block
    monkeypatch.setattr(anomaly.replay, "_BALANCE_EVENTS", 1)  # only the first block
    first = {e.connection for e in next(read_blocks(trace))}
    assert first < set(CONNECTIONS)  # the others are placed by a hash of their name
    assert replay_file(trace, jobs) == list(replay(read_trace(trace)))


def test_a_share_keeps_its_connections_events_in_order() -> None:
    def event(ts: float, connection: str) -> Accepted:
        return Accepted(ts=ts, connection=connection, sender="", rcpts=[])

    late = next(c for c in CONNECTIONS if share_of(c, 2) == 1)
    block: list[TraceEvent] = [event(1, "a"), event(2, late), event(3, "b"), event(4, "a")]
    assert _Share({"a": 1, "b": 0}, 1, 2)(block) == [block[0], block[1], block[3]]
    assert _Share({"a": 1, "b": 0}, 0, 2)(block) == [block[2]]


def test_the_calendar_is_loaded_before_the_fork_unless_it_cannot_be() -> None:
    workdays._year.cache_clear()
    _preload_calendar([[], [Accepted(ts=START, connection="a", sender="", rcpts=[])]])
    assert workdays._year.cache_info().currsize == 2  # the trace's year and the next
    far = Accepted(ts=1e20, connection="a", sender="", rcpts=[])  # no year the calendar knows
    _preload_calendar([[far]])  # left to the detector, not raised here
    _preload_calendar([])
    assert workdays._year.cache_info().currsize == 2


def test_each_connection_is_in_exactly_one_share(trace: Path) -> None:
    one = {v.connection for v in replay_file(trace, 1)}
    found = [{v.connection for _, v in _replay_share(trace, s, 3)} for s in range(3)]
    assert set().union(*found) == one
    assert sum(len(f) for f in found) == len(one)


def test_balance_puts_the_busiest_apart_and_is_deterministic() -> None:
    seen = ["a"] * 50 + ["b"] * 40 + ["c"] * 30 + ["d"] * 20
    assert balance(seen, 2) == {"a": 0, "b": 1, "c": 1, "d": 0}
    assert balance(reversed(seen), 2) == balance(seen, 2)
    assert balance(["x", "y"], 2) == {"x": 0, "y": 1}  # a tie goes by name
    assert share_of("late.gov.kz", 3) == share_of("late.gov.kz", 3) in range(3)


PARENT = os.getpid()
RUN_HERE: list[int] = []


def _dying_share(
    path: Path,
    share: int,
    jobs: int,
    stats: TraceStats | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> object:
    """`_replay_share`, except that a worker dies without a word."""
    if os.getpid() != PARENT:
        os._exit(3)
    RUN_HERE.append(share)
    return _replay_share(path, share, jobs, stats, thresholds)


def test_a_lost_worker_has_its_share_run_here(trace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(anomaly.replay, "_replay_share", _dying_share)
    assert replay_file(trace, 2) == list(replay(read_trace(trace)))
    assert RUN_HERE == [1]  # this process ran its own share without it, then the lost one


def test_jobs_must_be_a_positive_number(trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["anomaly", "replay", "--jobs", "0", str(trace)])
    assert exit_.value.code == 2 and "--jobs" in capsys.readouterr().err
    assert main(["anomaly", "replay", "--jobs", "2", str(trace)]) == 0
    out, err = capsys.readouterr()
    assert "events/s" in err and "s CPU" in err
    actions = [json.loads(line) for line in out.splitlines()]  # a JSON object a line
    assert actions == [action_line(v) for v in replay(read_trace(trace))]  # as one process gives
    for connection in (*TWINS, LOOPER):  # each abusive one suspended, throttled before or not
        mine = [a["action"] for a in actions if a["connection"] == connection]
        assert mine in (["throttle", "suspend"], ["suspend"]), mine
    for a in actions:  # a throttle says its cap (recipients per 5 min), nothing else does
        assert ("cap_5m" in a) == (a["action"] == "throttle") and a.get("cap_5m", 20) >= 20
    assert {a["connection"] for a in actions} == {*TWINS, LOOPER}
