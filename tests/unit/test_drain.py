"""A drain in-process: node A's queue handed to node B's admin API, message by message.

A is a real spool with a `DrainService` over it; B is the admin API over real
services (`tests.support.admin.admin_api`), reached through the real wire
(`ugem.core.transfer_client.HttpReceiver`) over an in-process transport. No
worker runs on A unless a test holds a worker's lock itself.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from relay.queue.message import QueuedMessage, QueueState
from relay.queue.spool import Spool
from tests.support.admin import AdminApi, admin_api
from ugem.adapters.spool_queue import SpoolQueue, item
from ugem.core.clock import FakeClock
from ugem.core.drain_state import DrainFiles, DrainRequest, WorkerAnswer
from ugem.core.errors import ConflictError, SpoolError, UsageError
from ugem.core.metrics import Metrics
from ugem.core.services import drain
from ugem.core.services.audit import AuditLog
from ugem.core.services.drain import DrainReport, DrainService, Receiver
from ugem.core.services.tokens import Role
from ugem.core.store.sqlite import SqliteStore
from ugem.core.transfer_client import HttpReceiver, wire_form

TO = "gw-b.test:8025"
N = 12


def queued(n: int, **changes: object) -> QueuedMessage:
    data = b"From: <a@minfin.gov.kz>\r\nSubject: %d\r\n\r\nbody %d\r\n" % (n, n)
    msg = QueuedMessage(
        id=f"DRAINMSG{n:011d}",
        sender="a@minfin.gov.kz",
        rcpts=[f"r{n}@example.org"],
        data=data,
        size=len(data),
        connection="minfin.gov.kz",
        client_ip="10.0.0.1",
        received_at=1_767_225_600.0 + n,
        state=QueueState.DEFERRED,
        attempts=n % 4,
        next_attempt=1_767_229_000.0 + n,
        last_error=f"451 4.2.0 busy {n}",
        original_rcpts=[f"r{n}@example.org", f"done{n}@example.org"],
    )
    return replace(msg, **changes)  # type: ignore[arg-type]


class CutQueue(SpoolQueue):
    """A's queue whose first deletion fails: as if A died after B's commit."""

    cut = 1

    async def delete(self, ids: builtins.list[str]) -> int:
        if self.cut:
            self.cut -= 1
            raise SpoolError("disk gone (test)")
        return await super().delete(ids)


@dataclass
class Scene:
    a: Spool
    files: DrainFiles
    audit: AuditLog
    clock: FakeClock
    b: AdminApi

    def service(self, queue: SpoolQueue | None = None, pause_timeout: float = 5.0) -> DrainService:
        transport = httpx.ASGITransport(app=self.b.app)

        def connect(to: str, token: str) -> Receiver:
            return HttpReceiver(to, token, "gw-a.test", transport=transport)

        queue = queue or SpoolQueue(self.a)
        return DrainService(
            queue, self.files, self.audit, self.clock, connect, Metrics(), pause_timeout
        )

    async def drain(self, token: str | None = None, pause_timeout: float = 5.0) -> DrainReport:
        secret = self.b.secrets[Role.ADMIN] if token is None else token
        return await self.service(pause_timeout=pause_timeout).run(TO, secret, "cli:op")

    async def on_b(self) -> dict[str, QueuedMessage]:
        found = [await self.b.spool.get(m.id) for m in await self.b.spool.list(limit=10_000)]
        return {m.id: m for m in found if m is not None}


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    clock = FakeClock()
    a = Spool(tmp_path / "a" / "queue.db", clock, Metrics())
    await a.open()
    store = SqliteStore(tmp_path / "a" / "registry.db")
    try:
        async with admin_api(tmp_path / "b") as b:
            files = DrainFiles(tmp_path / "a" / "drain")
            yield Scene(a, files, AuditLog(store, clock), clock, b)
    finally:
        await a.close()
        await store.close()


async def fill(scene: Scene, count: int = N) -> list[QueuedMessage]:
    msgs = [queued(n) for n in range(count)]
    msgs[1] = replace(msgs[1], state=QueueState.HELD, hold_reason="held by operator")
    msgs[2] = replace(msgs[2], state=QueueState.ACTIVE, attempts=0, last_error="")
    for msg in msgs:
        await scene.a.commit(msg)
    return msgs


async def test_every_message_moves_as_it_was_and_the_node_is_empty(scene: Scene) -> None:
    msgs = await fill(scene)
    report = await scene.drain()
    assert (report.state, report.moved, report.already, report.failed, report.left) == (
        "done", N, 0, 0, 0,
    )  # fmt: skip
    assert report.empty and await scene.a.list() == []
    on_b = await scene.on_b()
    assert on_b == {m.id: m for m in msgs}  # envelope, schedule, hold, history
    request = scene.files.request()
    assert request is not None and request.to == TO  # A stays out of service
    actions = [e.action for e in await scene.audit.store.audit_log()]
    assert actions[:2] == ["node.drained", "node.drain"]
    imported = await scene.b.store.audit_log(target=msgs[0].id)
    assert [(e.action, e.actor) for e in imported] == [("queue.import", "api:admin-token")]


async def test_a_refused_token_moves_nothing_and_says_why(scene: Scene) -> None:
    msgs = await fill(scene, 3)
    report = await scene.drain(token="ugem_not_a_token")
    assert (report.state, report.moved, report.left) == ("stopped", 0, 3)
    assert f"{TO} answered 401" in report.reason and "unknown or revoked" in report.reason
    assert [m.id for m in await scene.a.list()] == [m.id for m in msgs]
    assert await scene.on_b() == {}
    assert (await scene.drain()).empty  # the same request, resumed with a good token


async def test_a_message_the_receiver_refuses_stays_with_the_reason(scene: Scene) -> None:
    await fill(scene, 3)
    crowd = [f"r{i}@example.org" for i in range(1001)]  # B takes 1000 (default max)
    big = queued(99, rcpts=crowd, original_rcpts=crowd)
    await scene.a.commit(big)
    report = await scene.drain()
    assert (report.state, report.moved, report.failed, report.left) == ("stopped", 3, 1, 1)
    assert "answered 422" in report.failures[big.id] and "max_recipients" in report.failures[big.id]
    assert [m.id for m in await scene.a.list()] == [big.id]


async def test_a_cut_between_the_receivers_commit_and_the_removal_is_not_a_duplicate(
    scene: Scene,
) -> None:
    msgs = await fill(scene)
    first = await scene.service(CutQueue(scene.a)).run(TO, scene.b.secrets[Role.ADMIN], "op")
    assert first.state == "stopped" and "disk gone" in first.reason
    on_both = set(await scene.on_b()) & {m.id for m in await scene.a.list()}
    assert len(on_both) == 1  # committed on B, never removed from A
    second = await scene.drain()
    assert second.empty and second.already == 1
    assert first.moved + second.moved + second.already == N
    assert set(await scene.on_b()) == {m.id for m in msgs}  # each once


async def test_a_message_the_receiver_delivered_is_not_taken_again(scene: Scene) -> None:
    msg = queued(1)
    transfer = scene.b.services.transfer
    assert transfer is not None
    assert await transfer.take(item(msg), "gw-a.test", "test") == "created"
    assert await transfer.take(item(msg), "gw-a.test", "test") == "already"
    await scene.b.spool.remove(msg.id)  # B delivered it; A retries after a cut
    assert await transfer.take(item(msg), "gw-a.test", "test") == "already"
    assert await scene.on_b() == {}


async def test_a_receiver_being_drained_itself_takes_nothing(scene: Scene) -> None:
    await fill(scene, 3)
    b_files = DrainFiles(scene.b.spool.path.parent / "drain")
    b_files.ask(DrainRequest("r1", "gw-c.test:8025", 0.0, "op"))
    report = await scene.drain()
    assert (report.state, report.moved, report.left) == ("stopped", 0, 3)
    assert "answered 409" in report.reason and "being drained into gw-c.test" in report.reason


async def test_the_envelope_is_checked_against_the_receivers_limits(scene: Scene) -> None:
    transfer = scene.b.services.transfer
    assert transfer is not None
    for bad, field in (
        (queued(1, rcpts=["no address"]), "rcpts"),
        (queued(1, rcpts=[]), "rcpts"),
        (queued(1, size=3), "size"),
        (queued(1, sender="a b@c"), "sender"),
    ):
        with pytest.raises(UsageError, match=f"^{field}:"):
            await transfer.take(item(bad), "gw-a.test", "test")
    assert await scene.on_b() == {}


async def test_nothing_moves_before_every_running_worker_is_quiet(scene: Scene) -> None:
    await fill(scene, 3)
    lock = scene.files.worker_lock(0)  # a worker 0 runs: it holds its lock
    assert lock.try_acquire()
    try:
        stuck = await scene.drain(pause_timeout=0.3)
        assert (stuck.state, stuck.moved, stuck.left) == ("stopped", 0, 3)
        assert stuck.reason.startswith("worker 0 has not paused yet within 0.3 s")

        async def answer_when_asked() -> None:
            while (request := scene.files.request()) is None:
                await asyncio.sleep(0.01)
            busy = WorkerAnswer(0, request.id, 1, 1, 0, False, 0.0)
            scene.files.give_answer(busy)
            await asyncio.sleep(0.3)  # an attempt in flight, then it ends
            scene.files.give_answer(replace(busy, in_flight=0, quiet=True))

        answering = asyncio.create_task(answer_when_asked())
        done = await scene.drain()
        await answering
        assert done.empty and done.moved == 3
    finally:
        lock.release()


async def test_one_run_at_a_time_and_cancel_takes_the_node_back(scene: Scene) -> None:
    service = scene.service()
    held = scene.files.run_lock()
    assert held.try_acquire()  # another process runs a drain
    try:
        with pytest.raises(ConflictError, match="running already"):
            await service.run(TO, scene.b.secrets[Role.ADMIN], "op")
    finally:
        held.release()
    assert scene.files.request() is None  # the refused run asked nothing
    with pytest.raises(UsageError, match=r"^to:"):
        await service.run("not an address", "x", "op")
    assert (await service.run(TO, scene.b.secrets[Role.ADMIN], "op")).empty
    status = await service.cancel("op", "maintenance over")
    assert status.request is None and scene.files.request() is None
    actions = [e.action for e in await scene.audit.store.audit_log()]
    assert actions[0] == "node.drain-cancel"


async def test_a_message_too_large_for_the_receiver_stays(scene: Scene) -> None:
    msgs = await fill(scene, 3)
    transfer = scene.b.services.transfer
    assert transfer is not None
    transfer.limits = replace(transfer.limits, max_size=len(msgs[0].data or b"") - 1)
    report = await scene.drain()
    assert (report.state, report.moved, report.failed, report.left) == ("stopped", 0, 3, 3)
    assert "answered 422: text: " in report.failures[msgs[0].id]
    assert "over this node's" in report.failures[msgs[0].id]


async def test_a_full_receiver_is_retried_then_the_mail_stays(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(drain, "RETRY_DELAY", 0.01)
    await fill(scene, 3)
    scene.b.spool._disk_full = True
    report = await scene.drain()
    assert (report.state, report.moved, report.left) == ("stopped", 0, 3)
    assert "answered 503: disk full" in report.reason
    scene.b.spool._disk_full = False  # room again: the same drain, resumed, empties A
    assert (await scene.drain()).empty


async def test_the_import_takes_a_message_over_the_apis_usual_body_cap(scene: Scene) -> None:
    big = b"Subject: big\r\n\r\n" + b"x" * (2 * 1024 * 1024)  # [admin] max_body_size is 1 MiB
    msg = queued(1, data=big, size=len(big))
    created = await scene.b.call("POST", "/v1/queue/import", Role.ADMIN, wire_form(item(msg), "a"))
    assert created.status_code == 201, created.text
    assert created.json() == {"id": msg.id, "result": "created"}
    again = await scene.b.call("POST", "/v1/queue/import", Role.ADMIN, wire_form(item(msg), "a"))
    assert (again.status_code, again.json()["result"]) == (200, "already")
    other = await scene.b.call(
        "POST", "/v1/queue/release", Role.OPERATOR, {"connection": "x" * 2**21}
    )
    assert other.status_code == 413  # every other route keeps the usual cap


async def test_a_run_whose_process_died_shows_as_interrupted(scene: Scene) -> None:
    report = DrainReport("r1", TO, state="moving", moved=5, pid=424242)
    scene.files.report(report.as_dict())  # written by a run killed since: no run lock held
    shown = scene.service().status().report
    assert shown is not None and (shown.state, shown.moved) == ("stopped", 5)
    assert shown.reason == "interrupted: the process that ran it (424242) is gone"


async def test_stop_accepting_asks_once_counts_what_is_left_and_yields_to_a_drain(
    scene: Scene,
) -> None:
    await fill(scene)
    service = scene.service()
    status = await service.stop_accepting("cli:op", "maintenance")
    assert status.request is not None and status.request.to == ""  # no target: keep delivering
    again = await service.stop_accepting("cli:op", "again")
    assert again.request == status.request  # already so: nothing new asked or audited
    assert await service.left() == N
    actions = [e.action for e in await scene.audit.store.audit_log()]
    assert actions.count("node.stop-accepting") == 1
    assert (await service.run(TO, scene.b.secrets[Role.ADMIN], "op")).empty  # may drain after
    with pytest.raises(ConflictError, match=f"draining into {TO}"):
        await service.stop_accepting("cli:op")
    assert await service.left() == 0
