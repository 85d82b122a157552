"""The queue service of a node worker sees every worker's spool (`node_queue`).

A data dir laid out as `ugem serve --workers 2` lays it out: worker 0's spool
`spool/queue.db` and worker 1's `spool/queue-w1.db`, both open as their
running workers hold them. The admin API's `QueueService` of either worker,
wired as `ugem.node` wires it, lists the messages of both (merged in queue id
order, with the limit) and holds, releases, retries, deletes and purges mail
in the other worker's spool, audited like mail of its own; an unknown id
changes nothing anywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from relay.queue.message import QueuedMessage, QueueState
from relay.queue.spool import Spool, spool_path
from tests.unit.test_cli_queue import deferred
from tests.unit.test_spool import message
from ugem.adapters.spool_queue import node_queue
from ugem.core.clock import FakeClock
from ugem.core.config import Config, NodeConfig
from ugem.core.errors import ConflictError, NotFoundError
from ugem.core.metrics import Metrics
from ugem.core.queue_filter import Criteria
from ugem.core.services.audit import AuditLog
from ugem.core.services.mailqueue import OPERATOR_HOLD, QueueService
from ugem.core.store.sqlite import SqliteStore

ACTOR = "api:noc"


@dataclass
class Workers:
    config: Config
    spools: list[Spool]  # worker i's live spool
    store: SqliteStore
    clock: FakeClock

    def service(self, worker: int) -> QueueService:
        """Worker `worker`'s queue service, as its node wires it."""
        queue = node_queue(self.config, self.spools[worker], self.clock)
        return QueueService(queue, AuditLog(self.store, self.clock), self.clock)

    async def state(self, worker: int, queue_id: str) -> QueueState | None:
        msg = await self.spools[worker].get(queue_id, with_data=False)
        return None if msg is None else msg.state


async def running(config: Config, worker: int, *msgs: QueuedMessage) -> Spool:
    spool = Spool(spool_path(config, worker), FakeClock(), Metrics())
    await spool.open()
    for msg in msgs:
        await spool.commit(msg)
    return spool


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[Workers]:
    config = Config(node=NodeConfig(data_dir=str(tmp_path), workers=2))
    spools = [
        await running(config, 0, message(1), deferred(3), message(5, connection="edu.gov.kz")),
        await running(config, 1, message(2), deferred(4), message(6, connection="edu.gov.kz")),
    ]
    store = SqliteStore(tmp_path / "registry.db")
    try:
        yield Workers(config, spools, store, FakeClock())
    finally:
        for spool in spools:
            await spool.close()
        await store.close()


async def test_each_worker_lists_the_mail_of_both_in_id_order(workers: Workers) -> None:
    everything = [message(n).id for n in range(1, 7)]
    for worker in (0, 1):
        service = workers.service(worker)
        assert [m.id for m in await service.list()] == everything
        assert [m.id for m in await service.list(limit=3)] == everything[:3]
        listed = await service.list(Criteria(state="deferred"))
        assert [m.id for m in listed] == [deferred(3).id, deferred(4).id]
        found = await service.list(Criteria(connection="edu.gov.kz"))
        assert [m.id for m in found] == [message(5).id, message(6).id]
        shown = await service.show(message(2 - worker).id)  # the other worker's
        assert shown.headers == f"Subject: test {2 - worker}"


async def test_hold_and_release_mail_in_the_other_workers_spool(workers: Workers) -> None:
    service, theirs = workers.service(0), message(2).id
    assert await service.hold(theirs, ACTOR) == 1
    held = await workers.spools[1].get(theirs, with_data=False)
    assert held is not None and (held.state, held.hold_reason) == (QueueState.HELD, OPERATOR_HOLD)
    with pytest.raises(ConflictError, match="held already"):
        await service.hold(theirs, ACTOR)
    assert await service.release(theirs, ACTOR, "checked") == 1
    assert await workers.state(1, theirs) == QueueState.ACTIVE
    assert await service.retry(deferred(4).id, ACTOR) == 1
    assert await workers.state(1, deferred(4).id) == QueueState.ACTIVE
    assert await service.delete(message(6).id, ACTOR, "spam") == 1
    assert await workers.state(1, message(6).id) is None
    actions = [(r.entry.action, r.entry.target) for r in await service.audit.list()]
    assert actions == [
        ("queue.delete", message(6).id),
        ("queue.retry", deferred(4).id),
        ("queue.release", theirs),
        ("queue.hold", theirs),
    ]


async def test_several_ids_across_spools_are_checked_before_any_change(workers: Workers) -> None:
    service = workers.service(1)
    ids = [message(1).id, message(2).id]  # worker 0's and worker 1's
    with pytest.raises(NotFoundError, match="queue id not found: NOSUCHID"):
        await service.change("hold", [*ids, "NOSUCHID"], ACTOR)
    with pytest.raises(ConflictError, match=f"{deferred(3).id} is deferred, not held"):
        await service.change("release", [deferred(3).id], ACTOR)
    assert [await workers.state(w, i) for w, i in enumerate(ids)] == [QueueState.ACTIVE] * 2
    assert await service.audit.list() == []
    assert await service.change("hold", ids, ACTOR, "case 7") == 2
    assert [await workers.state(w, i) for w, i in enumerate(ids)] == [QueueState.HELD] * 2


async def test_bulk_actions_reach_every_spool(workers: Workers) -> None:
    service = workers.service(0)
    assert await service.flush(ACTOR) == 2
    assert await workers.state(0, deferred(3).id) == QueueState.ACTIVE
    assert await workers.state(1, deferred(4).id) == QueueState.ACTIVE
    for worker, n in ((0, 5), (1, 6)):
        await workers.spools[worker].hold([message(n).id], reason="suspended")
    assert await service.release_connection("edu.gov.kz", ACTOR) == 2
    for worker, n in ((0, 5), (1, 6)):
        await workers.spools[worker].hold([message(n).id], reason="suspended")
    assert await service.purge_connection("edu.gov.kz", ACTOR) == 2
    assert [m.id for m in await service.list()] == [message(n).id for n in range(1, 5)]


async def test_no_spool_file_is_made_for_a_worker_that_has_none(tmp_path: Path) -> None:
    config = Config(node=NodeConfig(data_dir=str(tmp_path), workers=2))
    lone = await running(config, 1, message(2))  # worker 0 has not started yet
    store = SqliteStore(tmp_path / "registry.db")
    try:
        service = Workers(config, [lone, lone], store, FakeClock()).service(1)
        assert [m.id for m in await service.list()] == [message(2).id]
        assert not spool_path(config).exists()
    finally:
        await lone.close()
        await store.close()
