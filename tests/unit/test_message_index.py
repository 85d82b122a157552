"""The message index (`ugem.core.message_index`): filing entries, searching, pruning, size.

Entries are made from real events by `ugem.core.maillog.entry_of`, as the writer
files them. Two `MessageIndex` handles on one file play two workers of a node.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ugem.core.events import Accepted, Event, Outcome, QueueChange, Refused
from ugem.core.maillog import Entry, entry_of
from ugem.core.message_index import PER_MINUTE, Filter, MessageIndex, index_path

T0 = 1_767_225_600.0
DAY = 86400.0


@pytest.fixture
def index(tmp_path: Path) -> Iterator[MessageIndex]:
    found = MessageIndex(index_path(tmp_path))
    yield found
    found.close()


def entries(*events: Event) -> list[Entry]:
    made = [entry_of(ev) for ev in events]
    return [e for e in made if e is not None]


def accepted(queue_id: str, ts: float = T0, sender: str = "a@gov.kz", *rcpts: str) -> Accepted:
    to = rcpts or ("x@example.org",)
    return Accepted(
        ts, queue_id, "gov.kz", "127.0.0.2", sender, to, 100, message_id=f"{queue_id}@m"
    )


def outcome(queue_id: str, kind: str, rcpt: str, ts: float) -> Outcome:
    code = {"delivered": 250, "deferred": 451, "bounced": 550}[kind]
    return Outcome(ts, kind, queue_id, "gov.kz", "127.0.0.2", rcpt, code, "said", hop="mx:25")  # type: ignore[arg-type]


def ids(index: MessageIndex, found: Filter, limit: int = 100) -> list[str]:
    return [m.queue_id for m in index.search(found, limit)[0]]


def test_a_message_history_in_time_order_found_by_each_filter(index: MessageIndex) -> None:
    index.write(
        entries(
            accepted("Q1", T0, "a@gov.kz", "x@example.org", "y@Example.ORG"),
            outcome("Q1", "deferred", "x@example.org", T0 + 1),
            outcome("Q1", "delivered", "y@Example.ORG", T0 + 1),
        )
    )
    index.write(entries(outcome("Q1", "delivered", "x@example.org", T0 + 60)))
    index.write(entries(accepted("Q2", T0 + 5, "b@gov.kz", "z@other.kz")))
    [found], total = index.search(Filter(queue_id="Q1"), 10)
    assert total == 1
    assert (found.sender, found.message_id, found.first, found.last) == (
        "a@gov.kz",
        "Q1@m",
        T0,
        T0 + 60,
    )
    assert found.rcpts == ("x@example.org", "y@Example.ORG")
    assert [(e.event, e.fields.get("rcpt")) for e in found.events] == [
        ("accepted", None),
        ("deferred", "x@example.org"),
        ("delivered", "y@Example.ORG"),
        ("delivered", "x@example.org"),
    ]
    assert ids(index, Filter(message_id="Q2@m")) == ["Q2"]
    assert ids(index, Filter(sender="A@GOV.KZ")) == ["Q1"]  # any case
    assert ids(index, Filter(rcpt="Y@example.org")) == ["Q1"]
    assert ids(index, Filter(rcpt="@example.org")) == ["Q1"]  # a whole domain
    assert ids(index, Filter(rcpt="@ample.org")) == []
    assert ids(index, Filter(sender="@gov.kz")) == ["Q2", "Q1"]  # newest first
    assert ids(index, Filter(since=T0 + 30)) == ["Q1"]  # its life overlaps the window
    assert ids(index, Filter(until=T0 + 5)) == ["Q1"]
    assert ids(index, Filter(since=T0 + 61)) == []


def test_pages_follow_the_cursor_and_the_total_counts_all(index: MessageIndex) -> None:
    index.write(entries(*(accepted(f"Q{n}", T0 + n // 2) for n in range(7))))  # ties in time
    first, total = index.search(Filter(), 3)
    seen = [m.queue_id for m in first]
    while len(first) == 3:
        last = first[-1]
        first, again = index.search(Filter(), 3, (last.first, last.key))
        assert again == total
        seen += [m.queue_id for m in first]
    assert total == 7 and seen == [f"Q{n}" for n in (6, 5, 4, 3, 2, 1, 0)]


def test_outcome_without_its_accepted_starts_the_message(index: MessageIndex) -> None:
    """A DSN, mail taken over from another node, or accepted before the index existed."""
    index.write(entries(outcome("D1", "delivered", "a@gov.kz", T0)))
    [found] = index.search(Filter(rcpt="a@gov.kz"), 10)[0]
    assert (found.queue_id, found.rcpts, [e.event for e in found.events]) == (
        "D1",
        ("a@gov.kz",),
        ["delivered"],
    )


def test_refusals_and_connection_wide_changes(index: MessageIndex) -> None:
    refused = Refused(T0, "203.0.113.9", "", "RCPT", 554, "5.7.1", "Relay access denied",
                      "no open relay", "eve@x.example", ("v@gmail.com",))  # fmt: skip
    held = QueueChange(T0 + 2, "held", "", "gov.kz", "relay", "suspended: gov.kz", 3)
    later = QueueChange(T0 + 99, "released", "", "gov.kz", "relay", "", 3)
    done = outcome("Q1", "delivered", "x@example.org", T0 + 9)
    index.write(entries(refused, refused, accepted("Q1"), held, done, later))
    found, total = index.search(Filter(sender="eve@x.example"), 10)
    assert total == 2 and all(m.queue_id == "" for m in found)  # one message each
    assert found[0].events[0].fields["why"] == "no open relay"
    [q1] = index.search(Filter(queue_id="Q1"), 10)[0]
    assert [e.event for e in q1.events] == ["accepted", "held", "delivered"]  # not `later`


def test_two_workers_write_one_file(tmp_path: Path) -> None:
    path = index_path(tmp_path)
    one, two = MessageIndex(path), MessageIndex(path)
    reader = MessageIndex(path, readonly=True)
    try:
        one.write(entries(accepted("W0")))
        two.write(entries(accepted("W1"), outcome("W0", "delivered", "x@example.org", T0 + 1)))
        assert ids(reader, Filter()) == ["W1", "W0"]
        [w0] = reader.search(Filter(queue_id="W0"), 1)[0]
        assert [e.event for e in w0.events] == ["accepted", "delivered"]
    finally:
        for handle in (one, two, reader):
            handle.close()


def test_prune_removes_history_that_ended_before(index: MessageIndex) -> None:
    index.write(entries(accepted("OLD", T0), accepted("LONG", T0), accepted("NEW", T0 + 40 * DAY)))
    index.write(entries(outcome("LONG", "delivered", "x@example.org", T0 + 35 * DAY)))
    index.write(entries(QueueChange(T0, "held", "", "gov.kz", "relay", "", 1)))
    assert index.prune(T0 + 31 * DAY) == 1
    assert sorted(ids(index, Filter())) == ["LONG", "NEW"]
    assert index.prune(T0 + 31 * DAY) == 0


def test_shrink_removes_the_oldest_until_the_file_fits(index: MessageIndex) -> None:
    for day in range(40):
        rcpts = [f"r{i}@x.kz" for i in range(20)]
        batch = [accepted(f"Q{day}-{n}", T0 + day * DAY, "a@gov.kz", *rcpts) for n in range(50)]
        index.write(entries(*batch))
    size = index.used_bytes()
    assert index.shrink(size) == 0  # it fits
    removed = index.shrink(size // 2)
    assert removed > 0 and index.used_bytes() <= size // 2 * 0.9
    kept = ids(index, Filter(), 5000)
    assert 0 < len(kept) == 2000 - removed and "Q39-49" in kept and "Q0-0" not in kept
    assert removed < 2000 * 0.75  # about what the bytes over the target make, not all


def test_per_minute_reads_its_own_index_not_every_event(index: MessageIndex) -> None:
    index.write(entries(accepted("Q1", T0, "a@gov.kz", "x@e.org")))
    index.write(entries(outcome("Q1", "delivered", "x@e.org", T0 + 61)))
    assert index.per_minute(T0, 2) == {0: (1, 0), 1: (0, 1)}
    assert index.per_minute(T0 + 120, 60) == {}
    db = sqlite3.connect(index.path)
    try:
        plan = db.execute(f"EXPLAIN QUERY PLAN {PER_MINUTE}", (T0, T0, T0 + 60)).fetchall()
    finally:
        db.close()
    assert any("USING COVERING INDEX events_flow" in str(step) for step in plan)
