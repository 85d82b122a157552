"""The spool on a disk that fills up: deliveries can still be recorded, new mail waits.

Issue 10, finding 2: with the disk full, each delivery succeeded but the
removal failed, and the scheduler delivered again at every back-off (62
messages arrived 1,074 times in 60 s). Here the spool lives on a real 8 MiB
tmpfs, filled by a filler file: a removal still succeeds (the reserve file is
given up for it), new mail is refused at once, health says why, and once space
is freed the reserve is made again and new mail is taken.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.queue.message import QueuedMessage
from relay.queue.spool import Spool
from tests.support.small_disk import fill, small_disk
from ugem.core.clock import FakeClock
from ugem.core.errors import SpoolFullError
from ugem.core.metrics import Metrics

KIB = 1024


def message(n: int, size: int) -> QueuedMessage:
    data = b"Subject: %d\r\n\r\n" % n + bytes([65 + n % 26]) * size
    return QueuedMessage(
        id=f"F{n:011d}",
        sender="a@minfin.gov.kz",
        rcpts=["r@example.org"],
        data=data,
        size=len(data),
        connection="minfin.gov.kz",
        client_ip="127.0.0.2",
        received_at=1_767_225_600.0,
        original_rcpts=["r@example.org"],
    )


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk(tmp_path / "disk", 8) as path:
        yield path


async def test_a_full_disk_still_records_deliveries_and_refuses_new_mail(disk: Path) -> None:
    spool = Spool(disk / "queue.db", FakeClock(), Metrics(), reserve_mb=1)
    await spool.open()
    try:
        assert (disk / "queue.db.reserve").stat().st_size == 1024 * KIB
        for n in range(4):
            await spool.commit(message(n, 64 * KIB))
        filler = fill(disk)
        with pytest.raises(SpoolFullError):
            await spool.commit(message(10, 512 * KIB))  # the WAL cannot grow
        for n in range(4):  # recorded on the reserve's room
            await spool.remove(f"F{n:011d}")
        assert spool.size() == 0
        ok, reason = spool.health()
        assert not ok and "disk full" in reason
        assert not (disk / "queue.db.reserve").exists()
        with pytest.raises(SpoolFullError, match="disk full"):
            await spool.commit(message(11, 1 * KIB))  # refused before any write
        assert not await spool.check_space()  # no room yet for the reserve
        filler.unlink()
        assert await spool.check_space()
        assert spool.health() == (True, "ok")
        assert (disk / "queue.db.reserve").exists()
        await spool.commit(message(12, 1 * KIB))
        assert spool.size() == 1
    finally:
        await spool.close()


async def test_a_spool_opened_on_a_full_disk_takes_no_new_mail(disk: Path) -> None:
    fill(disk, leave=256 * KIB)
    spool = Spool(disk / "queue.db", FakeClock(), Metrics(), reserve_mb=1)
    await spool.open()
    try:
        ok, reason = spool.health()
        assert not ok and "disk full" in reason
        with pytest.raises(SpoolFullError):
            await spool.commit(message(1, 1 * KIB))
    finally:
        await spool.close()
