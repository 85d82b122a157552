"""The reply tally (`ugem.core.reply_tally`): per-connection counts over a window, bounded.

Each connection's delivery attempts, its rejections by class (blocklisted,
spam content, policy, unknown user; other classes are attempts only) and its
complaints are counted in time buckets of the events' own time; `counts(now)`
sums the buckets of the window ending at `now`, so what is older drops out.
Inbound mail (no connection) and other events are not counted; an event
older than the window held is ignored; a connection with nothing left in the
window is forgotten, and beyond `max_connections` new ones are not tallied.
"""

from __future__ import annotations

import pytest

from ugem.core.events import Accepted, Complained, Outcome
from ugem.core.reply_class import BLOCKLISTED, DELIVERED, POLICY, RATE_LIMITED, UNKNOWN_USER
from ugem.core.reply_tally import BUCKETS, REJECTIONS, Counts, ReplyTally

HOUR = 3600.0
T0 = 1_767_225_600.0  # a bucket boundary for every width used here


def outcome(ts: float, conn: str, cls: str, kind: str = "bounced") -> Outcome:
    code = 250 if cls == DELIVERED else 554
    return Outcome(ts, kind, "q1", conn, "127.0.0.2", "r@example.org", code, "", code, cls)  # type: ignore[arg-type]


def complaint(ts: float, conn: str) -> Complained:
    return Complained(ts, conn, 1, "abuse", "queue_id")


def by_class(**found: int) -> dict[str, int]:
    return {cls: found.get(cls.replace("-", "_"), 0) for cls in REJECTIONS}


def test_attempts_rejections_and_complaints_are_counted_per_connection() -> None:
    tally = ReplyTally(6 * HOUR)
    for ev in (
        outcome(T0, "a.gov.kz", DELIVERED, "delivered"),
        outcome(T0 + 1, "a.gov.kz", BLOCKLISTED),
        outcome(T0 + 2, "a.gov.kz", BLOCKLISTED),
        outcome(T0 + 3, "a.gov.kz", RATE_LIMITED, "deferred"),  # an attempt, not a rejection
        outcome(T0 + 4, "b.gov.kz", UNKNOWN_USER),
        outcome(T0 + 5, "b.gov.kz", POLICY),
        complaint(T0 + 6, "b.gov.kz"),
        outcome(T0 + 7, "", BLOCKLISTED),  # inbound: no connection
        complaint(T0 + 8, ""),  # untraced
        Accepted(T0 + 9, "q2", "a.gov.kz", "127.0.0.2", "s@a.gov.kz", ("r@x.org",), 10),
    ):
        tally.observe(ev)
    counts = tally.counts(T0 + 10)
    assert counts == {
        "a.gov.kz": Counts(4, 0, by_class(blocklisted=2)),
        "b.gov.kz": Counts(2, 1, by_class(unknown_user=1, policy=1)),
    }
    assert counts["b.gov.kz"].rejected == 2 and len(tally) == 2


def test_the_window_slides_by_buckets_and_old_connections_are_forgotten() -> None:
    tally = ReplyTally(6 * HOUR)
    width = 6 * HOUR / BUCKETS  # 10 minutes
    tally.observe(outcome(T0, "old.gov.kz", BLOCKLISTED))
    tally.observe(outcome(T0 + 3 * HOUR, "new.gov.kz", POLICY))
    assert set(tally.counts(T0 + 6 * HOUR - 1)) == {"old.gov.kz", "new.gov.kz"}
    assert set(tally.counts(T0 + 6 * HOUR)) == {"new.gov.kz"}  # its bucket left the window
    assert tally.counts(T0 + 9 * HOUR) == {}
    tally.observe(outcome(T0 + 6 * HOUR + width, "new.gov.kz", POLICY))  # a new bucket: a sweep
    assert len(tally) == 1  # old.gov.kz had nothing left in the window
    tally.observe(outcome(T0 + 5, "late.gov.kz", POLICY))  # older than the window held
    assert "late.gov.kz" not in tally.counts(T0 + 6 * HOUR + width)


def test_a_slot_is_reused_for_its_next_bucket_and_never_mixes_two() -> None:
    tally = ReplyTally(HOUR, buckets=4)  # 15-minute buckets, a ring of 4
    tally.observe(outcome(T0, "a.gov.kz", BLOCKLISTED))
    tally.observe(outcome(T0 + HOUR, "a.gov.kz", POLICY))  # same slot, next round
    assert tally.counts(T0 + HOUR) == {"a.gov.kz": Counts(1, 0, by_class(policy=1))}
    tally.observe(outcome(T0 + 1, "a.gov.kz", BLOCKLISTED))  # the slot moved on: dropped
    assert tally.counts(T0 + HOUR)["a.gov.kz"].rejected == 1


def test_memory_is_bounded_by_connections_times_buckets() -> None:
    tally = ReplyTally(HOUR, buckets=6, max_connections=2)
    for conn in ("a.gov.kz", "b.gov.kz", "c.gov.kz", "c.gov.kz"):
        tally.observe(outcome(T0, conn, BLOCKLISTED))
    assert set(tally.counts(T0)) == {"a.gov.kz", "b.gov.kz"} and tally.untallied == 2
    with pytest.raises(ValueError, match="window"):
        ReplyTally(0.0)
