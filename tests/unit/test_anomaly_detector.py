"""The detector on hand-made traffic: clean bursts pass, abuse is suspended with a reason."""

from __future__ import annotations

import datetime as dt
import json
import random

from anomaly.baseline import Baseline, Stat
from anomaly.detector import MAX_SERVERS, Detector, Verdict
from anomaly.features import Features
from anomaly.trace import BOUNCED, DELIVERED
from ugem.workdays import unix_time

C = "x.gov.kz"
MONDAY_9 = unix_time(dt.datetime(2026, 11, 23, 9, 0))  # a working Monday, Asia/Almaty


def steady(det: Detector, start: float, hours: int) -> float:
    """One message a minute to a colleague, delivered; returns the time after it."""
    ts = start
    for _ in range(hours * 60):
        assert det.accepted(ts, C, "a@x.gov.kz", ["b@y.gov.kz"]) is None
        assert det.outcome(ts + 1, C, DELIVERED, 250) is None
        ts += 60
    return ts


def burst(det: Detector, ts: float, n: int, code: int, every: float = 1.0) -> Verdict | None:
    """`n` messages from a known sender to distinct recipients, each answered with `code`."""
    for i in range(n):
        t = ts + i * every
        verdict = det.accepted(t, C, "a@x.gov.kz", [f"r{i}@d{i % 50}.kz"])
        verdict = verdict or det.outcome(t + 0.5, C, BOUNCED if code >= 500 else DELIVERED, code)
        if verdict:
            return verdict
    return None


def test_a_clean_newsletter_is_not_suspended() -> None:
    det = Detector()
    ts = steady(det, MONDAY_9, 8)
    assert burst(det, ts, 900, 250) is None


def test_a_burst_to_unknown_recipients_is_suspended_fast_with_a_reason() -> None:
    det = Detector()
    ts = steady(det, MONDAY_9, 8)
    verdict = burst(det, ts, 300, 550, every=2.0)
    assert verdict is not None and verdict.action == "suspend"
    assert verdict.ts - ts < 60
    assert "against a usual" in verdict.reason and "unknown recipients" in verdict.reason
    assert det.accepted(verdict.ts + 1, C, "a@x.gov.kz", ["z@z.kz"]) is None  # stays suspended


def test_a_mail_loop_is_suspended() -> None:
    det = Detector()
    ts = steady(det, MONDAY_9, 2)
    verdicts = [det.accepted(ts + 5 * i, C, "a@x.gov.kz", ["b@y.gov.kz"]) for i in range(40)]
    found = [v for v in verdicts if v]
    assert len(found) == 1 and "same recipient" in found[0].reason


def test_features_windows_slide_in_event_time() -> None:
    f = Features(0.0)
    f.accepted(0.0, "a@x.kz", ["b@y.kz", "c@z.kz"])
    f.outcome(30.0, BOUNCED, 550)
    f.accepted(400.0, "", ["d@y.kz"])
    w5, w60 = f.window(5), f.window(60)
    assert (w5.msgs, w5.rcpts, w5.null, w5.invalid) == (1, 1, 1, 0)
    assert (w60.msgs, w60.rcpts, w60.invalid, w60.invalid_ratio) == (2, 3, 1, 1.0)
    f.accepted(3700.0, "a@x.kz", ["e@y.kz"])  # the first minute left the hour
    assert (f.window(60).msgs, f.window(60).invalid) == (2, 0)


def test_baseline_learns_a_weekly_burst_at_its_hour() -> None:
    week = 7 * 86_400.0
    start = MONDAY_9 - week
    base = Baseline(start)
    for i in range(12):  # last Monday, 9:00 to 10:00: a newsletter
        base.add(start + 300 * i, 200)
    for hour in range(1, 7 * 24):  # then a quiet week, one message an hour
        base.add(start + 3600 * hour, 1)
    mean_monday, _, warm = base.expected(MONDAY_9 + 60)
    mean_tuesday, _, _ = base.expected(MONDAY_9 + 86_400 + 60)
    assert warm and mean_monday > 150 and mean_tuesday < 5


def test_features_windows_start_afresh_after_an_hour_of_silence() -> None:
    f = Features(0.0)
    for minute in range(10):
        f.accepted(60.0 * minute, "a@x.kz", ["b@y.kz"])
    assert (f.window(5).msgs, f.window(60).msgs) == (5, 10)
    f.outcome(600.0 + 3600.0, DELIVERED, 250)  # an hour later: only this outcome is left
    assert f.window(60) == (60, 0, 0, 0, 0, 1, 0, 0, 0)
    f.accepted(100.0, "", ["c@y.kz"])  # older than the newest event: counted in its minute
    assert (f.window(1).msgs, f.window(1).null, f.distinct(1)) == (1, 1, (1, 1))


def test_top_pair_reaches_agrees_with_counting_every_pair() -> None:
    rng = random.Random(7)
    for _ in range(200):
        f = Features(0.0)
        for i in range(rng.randint(0, 60)):
            sender = f"s{rng.randrange(3)}@x.kz"
            rcpts = [f"r{rng.randrange(4)}@y.kz" for _ in range(rng.randint(0, 3))]
            f.accepted(i * 2.0, sender, rcpts)  # one 5-min block
        least = rng.choice([1, 5, 15, 30])
        assert f.top_pair_reaches(least) == (f.top_pair >= least)


def test_baseline_learns_the_same_whether_asked_often_or_once() -> None:
    rng = random.Random(3)
    lazy, eager = Baseline(MONDAY_9), Baseline(MONDAY_9)
    ts = MONDAY_9
    for _ in range(3000):
        ts += rng.choice([30.0, 300.0, 4000.0, 90_000.0])  # busy, quiet, a long silence
        n = rng.randint(0, 20)
        lazy.add(ts, n)
        eager.add(ts, n)
        assert eager.overall.n >= 0  # asking learns what is closed
        if rng.random() < 0.05:
            assert lazy.expected(ts) == eager.expected(ts)
    assert lazy.expected(ts) == eager.expected(ts)


def test_stat_observes_a_value_many_times_as_one_at_a_time() -> None:
    once, many = Stat(), Stat()
    for x, times in [(5.0, 1), (0.0, 7), (12.0, 2)]:
        many.add(x, times)
        for _ in range(times):
            once.add(x)
    assert (once.mean, once.var, once.n) == (many.mean, many.var, many.n)


def test_a_restored_baseline_expects_what_the_saved_one_did_and_learns_no_gap() -> None:
    det = Detector()
    ts = steady(det, MONDAY_9, 30)
    traffic = det.traffic(C)
    assert traffic is not None
    saved = json.loads(json.dumps(det.baselines()[C]))  # through the store's JSON
    week_later = ts + 7 * 86400  # the same hour a week on: the node was down meanwhile
    restored = Baseline.restored(saved, week_later)
    assert restored.expected(week_later) == traffic[1].expected(week_later)
    assert restored.overall.n == traffic[1].overall.n  # the week it did not see is not silence


def test_a_restarted_detector_takes_up_its_baselines_at_the_first_event() -> None:
    old = Detector()
    ts = steady(old, MONDAY_9, 30)
    fresh, restarted = Detector(), Detector()
    restarted.restore(old.baselines())
    for det in (fresh, restarted):
        det.accepted(ts, C, "a@x.gov.kz", ["b@y.gov.kz"])
    warm = [t[1].expected(ts)[2] for det in (fresh, restarted) if (t := det.traffic(C))]
    assert warm == [False, True]
    assert set(restarted.baselines()) == {C}


def test_a_flagged_connection_is_counted_only_by_a_detector_that_keeps_counting() -> None:
    for keep in (False, True):
        det = Detector(keep_counting=keep)
        ts = steady(det, MONDAY_9, 8)
        verdict = burst(det, ts, 300, 550, every=2.0)
        assert verdict is not None
        traffic = det.traffic(C)
        assert traffic is not None
        before, learned = traffic[0].window(5).msgs, traffic[1].overall.n
        for i in range(30):
            assert det.accepted(verdict.ts + 1 + i, C, "a@x.gov.kz", [f"z{i}@z.kz"]) is None
        grew = traffic[0].window(5).msgs - before  # a minute's worth may slide out meanwhile
        assert (grew >= 25) if keep else (grew <= 0), grew
        assert traffic[1].overall.n == learned  # abnormal traffic never becomes normal


def test_an_outage_backlog_with_queued_alerts_is_not_a_mail_loop() -> None:
    """The server was down three hours; its queue (alerts of a monitoring system to one
    address among it) arrives at once. Found by `ugem anomaly simulate`: all 15 false
    suspensions of two simulated months were such backlogs."""
    det = Detector()
    ts = steady(det, MONDAY_9, 8) + 3 * 3600  # silent from 17:00 to 20:00
    for i in range(40):  # an alert every 4.5 minutes while the server was down
        assert det.accepted(ts + i * 0.5, C, "monitor@x.gov.kz", ["ops@x.gov.kz"]) is None
    for i in range(100):  # and the people's mail of those hours
        assert det.accepted(ts + 20 + i * 0.2, C, f"p{i % 9}@x.gov.kz", [f"c{i}@y.gov.kz"]) is None


def test_a_loop_after_a_silence_is_caught_once_the_backlog_is_spent() -> None:
    det = Detector()
    ts = steady(det, MONDAY_9, 8) + 3 * 3600
    verdicts = [det.accepted(ts + 5 * i, C, "a@x.gov.kz", ["b@y.gov.kz"]) for i in range(300)]
    found = [(i, v) for i, v in enumerate(verdicts) if v]
    assert len(found) == 1 and "same recipient" in found[0][1].reason
    assert found[0][0] * 5 <= 20 * 60  # within the 30 minutes a backlog may take


def test_a_trace_naming_countless_server_addresses_keeps_a_bounded_map() -> None:
    """The per-server silence map reads `ip` from outside (a trace, the node's events):
    past MAX_SERVERS addresses the rest are counted as one."""
    det = Detector()
    for i in range(10_000):
        ip = f"10.{i >> 16}.{i >> 8 & 255}.{i & 255}"
        assert det.accepted(MONDAY_9 + i, C, "a@x.gov.kz", [f"b{i}@y.gov.kz"], ip) is None
    conn = det._conns[C]
    assert len(conn.servers) == MAX_SERVERS + 1  # the first MAX_SERVERS and "" for the rest
    assert conn.servers[""][1] == 10_000 - MAX_SERVERS
