"""Queue ids: unique even for many messages in one millisecond, sorted by time."""

from __future__ import annotations

import os

from relay.queue.message import QUEUE_ID_LENGTH, new_queue_id


def test_a_hundred_thousand_ids_in_one_millisecond_are_unique() -> None:
    ids = {new_queue_id(1_767_225_600.0) for _ in range(100_000)}
    assert len(ids) == 100_000
    assert {len(i) for i in ids} == {QUEUE_ID_LENGTH}


def test_ids_sort_by_time_and_use_no_vowels() -> None:
    earlier, later = new_queue_id(1_767_225_600.000), new_queue_id(1_767_225_600.001)
    assert earlier[:9] < later[:9]
    assert not set("AEIOU") & set(earlier + later)


def test_a_forked_worker_makes_ids_of_its_own() -> None:
    """Workers are forked from one process: each must draw a sequence of its own."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, ",".join(new_queue_id(1.0) for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split(",")
    os.waitpid(pid, 0)
    parent = [new_queue_id(1.0) for _ in range(5)]
    assert len(child) == 5 and not set(child) & set(parent)
