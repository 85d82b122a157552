"""relay.deliver.backoff_share: a rate-limit cut one worker makes holds every worker back.

Two workers are two `Backoff`s, each with its `SharedCuts` on the same file of the
node's data directory (as `ugem.node` wires them when `[node] workers` > 1); a pull is
what the node does every second. A second process publishing is a real fork.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from relay.deliver.backoff import Backoff
from relay.deliver.backoff_share import KEEP_S, SharedCuts
from tests.unit.test_backoff import DELAY, KEY, OTHER, delivered, limited, make
from ugem.core.clock import FakeClock


def worker(path: Path, number: int) -> tuple[Backoff, SharedCuts, FakeClock]:
    backoff, clock, _ = make(concurrency=8)
    share = SharedCuts(path, number, clock)
    backoff.on_cut = share.publish
    return backoff, share, clock


def pull(backoff: Backoff, share: SharedCuts) -> None:
    for key, strikes in share.pull():
        backoff.heard(key, strikes)


def test_a_cut_in_one_worker_reaches_the_other_at_its_next_pull(tmp_path: Path) -> None:
    path = tmp_path / "backoff.db"
    (a, share_a, _), (b, share_b, _) = worker(path, 0), worker(path, 1)
    limited(a)
    assert (a.limit(KEY), b.limit(KEY)) == (4, 8)  # not yet pulled
    pull(b, share_b)
    assert (b.limit(KEY), b.spacing(KEY)) == (4, DELAY)
    assert b.admit(KEY).wait == DELAY  # paused, as if it had heard the 421 itself
    assert b.admit(OTHER).wait == 0.0  # another destination is not touched
    pull(a, share_a)  # its own cut does not come back to it
    assert a.limit(KEY) == 4
    pull(b, share_b)  # read once
    assert b.limit(KEY) == 4


def test_a_cut_it_knows_already_is_not_applied_twice_nor_published_again(tmp_path: Path) -> None:
    path = tmp_path / "backoff.db"
    (a, share_a, clock_a), (b, share_b, clock_b) = worker(path, 0), worker(path, 1)
    limited(a)
    limited(b)  # b heard its own 421 meanwhile: it knows as much
    pull(b, share_b)
    assert b.limit(KEY) == 4
    pull(a, share_a)  # b's cut (1 reply) is no news to a (1 reply)
    assert a.limit(KEY) == 4
    clock_a.advance(DELAY)
    limited(a)  # a second reply at a: 2 replies, a longer spacing
    pull(b, share_b)
    assert (b.limit(KEY), b.spacing(KEY)) == (2, 2 * DELAY)
    clock_b.advance(2 * DELAY)
    delivered(b)  # b eases by its own successes: one doubling undone
    assert b.spacing(KEY) == DELAY
    published = len(SharedCuts(path, 9, FakeClock())._db.execute("SELECT id FROM cuts").fetchall())
    assert published == 3  # a, b, a: what b heard from a was not published again


def test_a_worker_started_later_reads_only_the_cuts_made_after_it_opened(tmp_path: Path) -> None:
    path = tmp_path / "backoff.db"
    a, _, clock = worker(path, 0)
    limited(a)
    late, late_share, _ = worker(path, 1)
    pull(late, late_share)
    assert late.limit(KEY) == 8
    clock.advance(KEEP_S + 1)
    limited(a, OTHER)  # old rows go as new ones come
    pull(late, late_share)
    assert late.limit(OTHER) == 4
    rows = SharedCuts(path, 9, FakeClock())._db.execute("SELECT destination FROM cuts")
    assert [r[0] for r in rows] == [OTHER]


def _publish_from_another_process(path: Path) -> None:
    share = SharedCuts(path, 1, FakeClock())
    share.publish(KEY, 2)
    share.close()


def test_a_cut_published_by_another_process_is_read(tmp_path: Path) -> None:
    path = tmp_path / "backoff.db"
    b, share_b, _ = worker(path, 0)
    child = multiprocessing.get_context("fork").Process(
        target=_publish_from_another_process, args=(path,)
    )
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0
    pull(b, share_b)
    assert (b.limit(KEY), b.spacing(KEY)) == (4, 2 * DELAY)


def test_a_broken_file_is_logged_and_the_worker_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "backoff.db"
    backoff, share, _ = worker(path, 0)
    share.close()  # every call now fails (sqlite3.ProgrammingError)
    limited(backoff)  # publishing fails, the cut holds here
    assert backoff.limit(KEY) == 4
    assert share.pull() == []
