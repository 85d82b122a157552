"""The message search service (`ugem.core.services.messages`): input, pages, statuses.

Over a real index file written as a node's writer writes it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ugem.core.clock import FakeClock
from ugem.core.errors import ConflictError, StoreError, UsageError
from ugem.core.events import Accepted, Event, Outcome, QueueChange, Refused
from ugem.core.maillog import entry_of
from ugem.core.message_index import MessageIndex, index_path
from ugem.core.services.messages import (
    RATE_MINUTES,
    MessageQuery,
    MessageService,
    as_dict,
    parse_when,
)

T0 = 1_767_225_600.0  # 2026-01-01T05:00:00+05:00
ALMATY = dt.timezone(dt.timedelta(hours=5))


def write(path: Path, *events: Event) -> None:
    index = MessageIndex(path)
    try:
        index.write([e for e in map(entry_of, events) if e is not None])
    finally:
        index.close()


def accepted(queue_id: str, *rcpts: str, ts: float = T0) -> Accepted:
    return Accepted(ts, queue_id, "gov.kz", "127.0.0.2", "a@gov.kz", rcpts, 10)


def outcome(queue_id: str, kind: str, rcpt: str, ts: float = T0 + 1) -> Outcome:
    return Outcome(ts, kind, queue_id, "gov.kz", "127.0.0.2", rcpt, 250)  # type: ignore[arg-type]


def change(
    what: str, queue_id: str = "", ts: float = T0 + 2, connection: str = "gov.kz"
) -> QueueChange:
    return QueueChange(ts, what, queue_id, connection, "api:ops", "why", 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "end_of_day", "when"),
    [
        ("2026-01-06T09:30:00+05:00", False, dt.datetime(2026, 1, 6, 9, 30, tzinfo=ALMATY)),
        ("2026-01-06T04:30:00Z", False, dt.datetime(2026, 1, 6, 9, 30, tzinfo=ALMATY)),
        ("2026-01-06T09:30:00", False, dt.datetime(2026, 1, 6, 9, 30, tzinfo=ALMATY)),
        ("2026-01-06", False, dt.datetime(2026, 1, 6, tzinfo=ALMATY)),
        ("2026-01-06", True, dt.datetime(2026, 1, 7, tzinfo=ALMATY)),
        ("1767225600", False, dt.datetime(2026, 1, 1, 5, tzinfo=ALMATY)),
    ],
)
def test_times_and_dates_without_a_zone_are_almaty(
    text: str, end_of_day: bool, when: dt.datetime
) -> None:
    assert parse_when(text, "since", end_of_day) == when.timestamp()


@pytest.mark.parametrize("text", ["yesterdayish", "2026-13-01", "2026-01-06T25:00", "nan"])
def test_a_time_that_is_none_names_the_field(text: str) -> None:
    with pytest.raises(UsageError, match=r"^until: .* is not a time; expected RFC 3339"):
        parse_when(text, "until")


async def test_bad_input_and_an_index_turned_off(tmp_path: Path) -> None:
    service = MessageService(index_path(tmp_path))
    assert (await service.search(MessageQuery())).items == []  # no node wrote it yet
    with pytest.raises(UsageError, match=r"^limit: "):
        await service.search(MessageQuery(limit=0))
    with pytest.raises(UsageError, match=r"^cursor: "):
        await service.search(MessageQuery(cursor="bm90IGEgY3Vyc29y"))
    with pytest.raises(UsageError, match=r"^since: 2026-01-07 is not before until"):
        await service.search(MessageQuery(since="2026-01-07", until="2026-01-06"))
    with pytest.raises(ConflictError, match=r"index_days = 0"):
        await MessageService(None).search(MessageQuery())


async def test_the_status_is_read_from_the_history(tmp_path: Path) -> None:
    path = index_path(tmp_path)
    refused = Refused(T0, "203.0.113.9", "", "RCPT", 554, "5.7.1", "denied", "no relay")
    write(
        path,
        accepted("DELIVERED", "x@e.org"), outcome("DELIVERED", "delivered", "X@e.org"),
        accepted("BOUNCED", "x@e.org"), outcome("BOUNCED", "bounced", "x@e.org"),
        accepted("PARTLY", "x@e.org", "y@e.org"), outcome("PARTLY", "bounced", "x@e.org"),
        outcome("PARTLY", "delivered", "y@e.org"),
        accepted("QUEUED", "x@e.org", "y@e.org"), outcome("QUEUED", "delivered", "x@e.org"),
        outcome("QUEUED", "deferred", "y@e.org"),
        Accepted(T0, "HELD", "other.kz", "127.0.0.3", "a@other.kz", ("x@e.org",), 10),
        change("held", connection="other.kz"),  # its connection's mail, at once
        accepted("RELEASED", "x@e.org"), change("held", "RELEASED"),
        change("released", "RELEASED", ts=T0 + 3),
        accepted("DELETED", "x@e.org"), change("held", "DELETED"), change("deleted", "DELETED"),
        refused,
    )  # fmt: skip
    page = await MessageService(path).search(MessageQuery(limit=100))
    statuses = {h.message.queue_id: h.status for h in page.items}
    assert statuses == {
        "DELIVERED": "delivered",
        "BOUNCED": "bounced",
        "PARTLY": "partly delivered",
        "QUEUED": "queued",
        "HELD": "held",
        "RELEASED": "queued",
        "DELETED": "deleted",
        "": "refused",
    }


async def test_pages_follow_next_cursor_to_the_last(tmp_path: Path) -> None:
    path = index_path(tmp_path)
    write(path, *(accepted(f"Q{n}", "x@e.org", ts=T0 + n) for n in range(5)))
    service, seen, cursor = MessageService(path), [], None
    while True:
        page = await service.search(MessageQuery(limit=2, cursor=cursor))
        assert page.total == 5
        seen += [h.message.queue_id for h in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ["Q4", "Q3", "Q2", "Q1", "Q0"]


async def test_as_dict_gives_times_in_almaty(tmp_path: Path) -> None:
    path = index_path(tmp_path)
    write(path, accepted("Q1", "x@e.org"), outcome("Q1", "delivered", "x@e.org", T0 + 0.25))
    [history] = (await MessageService(path).search(MessageQuery(message_id=""))).items
    data = as_dict(history)
    assert (data["queue_id"], data["status"], data["first"]) == (
        "Q1",
        "delivered",
        "2026-01-01T05:00:00.000000+05:00",
    )
    assert [(e["time"], e["event"]) for e in data["events"]] == [
        ("2026-01-01T05:00:00.000000+05:00", "accepted"),
        ("2026-01-01T05:00:00.250000+05:00", "delivered"),
    ]


async def test_the_rate_counts_the_last_hours_whole_minutes_in_and_out(tmp_path: Path) -> None:
    path = index_path(tmp_path)
    refused = Refused(T0 - 30, "203.0.113.9", "", "RCPT", 554, "5.7.1", "denied", "no relay")
    write(
        path,
        accepted("OLD", "x@e.org", ts=T0 - 3601),  # before the hour
        accepted("FIRST", "x@e.org", ts=T0 - 3600),  # the first minute's start
        accepted("Q1", "x@e.org", "y@e.org", ts=T0 - 61),
        outcome("Q1", "deferred", "x@e.org", T0 - 40),  # an attempt, not mail out
        outcome("Q1", "delivered", "x@e.org", T0 - 30),
        outcome("Q1", "delivered", "y@e.org", T0 - 1),
        accepted("Q2", "x@e.org", ts=T0 - 5),
        refused,  # never in
        accepted("NOW", "x@e.org", ts=T0 + 10),  # the minute under way
    )
    rate = await MessageService(path, FakeClock(T0 + 30)).rate()
    assert (rate.since, rate.until) == (T0 - 3600, T0)
    assert len(rate.accepted) == len(rate.delivered) == RATE_MINUTES
    assert (rate.accepted[0], rate.accepted[58], rate.accepted[59]) == (1, 1, 1)
    assert (sum(rate.accepted), sum(rate.delivered), rate.delivered[59]) == (3, 2, 2)


async def test_the_rate_of_an_index_not_written_off_or_unreadable(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    rate = await MessageService(index_path(tmp_path), clock).rate()
    assert rate.accepted == rate.delivered == (0,) * RATE_MINUTES  # a node that never ran
    with pytest.raises(ConflictError, match=r"index_days = 0"):
        await MessageService(None, clock).rate()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match=r"garbage\.db"):
        await MessageService(garbage, clock).rate()
