"""Queue ids: unique even for many messages in one millisecond, sorted by time."""

from __future__ import annotations

from relay.queue.message import QUEUE_ID_LENGTH, new_queue_id


def test_a_hundred_thousand_ids_in_one_millisecond_are_unique() -> None:
    ids = {new_queue_id(1_767_225_600.0) for _ in range(100_000)}
    assert len(ids) == 100_000
    assert {len(i) for i in ids} == {QUEUE_ID_LENGTH}


def test_ids_sort_by_time_and_use_no_vowels() -> None:
    earlier, later = new_queue_id(1_767_225_600.000), new_queue_id(1_767_225_600.001)
    assert earlier[:9] < later[:9]
    assert not set("AEIOU") & set(earlier + later)
