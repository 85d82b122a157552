"""`Spool.adopt`: a message another node hands over, made durable under its own id, once.

Real SQLite files and a FakeClock. The received ids are kept `keep` seconds
after the message itself is gone (delivered), so a retried hand-over is
recognised, and forgotten after: the table does not grow for ever.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from relay.queue.message import QueuedMessage, QueueState
from relay.queue.spool import Spool
from tests.unit.test_spool import message
from ugem.core.clock import FakeClock
from ugem.core.errors import SpoolFullError
from ugem.core.metrics import Metrics

KEEP = 3600.0


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    s = Spool(tmp_path / "queue.db", FakeClock(), Metrics())
    await s.open()
    yield s
    await s.close()


def handed(n: int) -> QueuedMessage:
    """A message as another node kept it: deferred twice, with its history."""
    return replace(
        message(n),
        state=QueueState.DEFERRED,
        attempts=2,
        next_attempt=1_767_230_000.0,
        last_error="451 4.2.0 mailbox busy",
    )


async def test_adopted_as_it_was_and_durable(tmp_path: Path, spool: Spool) -> None:
    msg = handed(1)
    assert await spool.adopt(msg, keep=KEEP) is True
    await spool.close()
    again = Spool(tmp_path / "queue.db", FakeClock(), Metrics())
    await again.open()
    try:
        assert await again.get(msg.id) == msg
        assert again.size() == 1
    finally:
        await again.close()


async def test_a_second_hand_over_of_one_id_writes_nothing(spool: Spool) -> None:
    msg = handed(1)
    assert await spool.adopt(msg, keep=KEEP) is True
    changed = replace(msg, rcpts=["other@example.org"], attempts=9)
    assert await spool.adopt(changed, keep=KEEP) is False
    assert await spool.get(msg.id) == msg
    assert spool.size() == 1


async def test_an_id_delivered_since_is_still_known_until_keep_passes(spool: Spool) -> None:
    clock = spool._clock
    assert isinstance(clock, FakeClock)
    msg = handed(1)
    assert await spool.adopt(msg, keep=KEEP)
    await spool.remove(msg.id)  # delivered
    assert await spool.had(msg.id, KEEP)
    assert await spool.adopt(msg, keep=KEEP) is False
    clock.advance(KEEP + 1)
    assert not await spool.had(msg.id, KEEP)
    assert await spool.adopt(msg, keep=KEEP) is True  # forgotten: taken as new


async def test_an_id_of_the_spools_own_mail_counts_as_had(spool: Spool) -> None:
    msg = message(7)
    await spool.commit(msg)
    assert await spool.had(msg.id, KEEP)
    assert await spool.adopt(handed(7), keep=KEEP) is False


async def test_a_full_disk_refuses_adoption_like_new_mail(spool: Spool) -> None:
    spool._disk_full = True
    with pytest.raises(SpoolFullError):
        await spool.adopt(handed(1), keep=KEEP)
