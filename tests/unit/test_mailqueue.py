"""`QueueService` by filter: the summary, the bulk actions and flush, over two workers' spools.

Two spools (as `ugem serve --workers 2` keeps them) hold mail of several
destination domains, origins and ages on a `FakeClock`; the service sees them
through the roof's `SpoolQueue` as a node's admin API does, with a journal (a
list) and the SQLite store's audit log.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from relay.queue.message import QueuedMessage, QueueState
from relay.queue.spool import Spool
from tests.unit.test_bounce import parse, parts, status_groups
from ugem.adapters.spool_queue import Returner, SpoolQueue
from ugem.core.clock import FakeClock
from ugem.core.errors import UsageError
from ugem.core.events import Event, QueueChange
from ugem.core.metrics import Metrics
from ugem.core.queue_filter import Criteria
from ugem.core.queue_shape import OTHER
from ugem.core.services import mailqueue
from ugem.core.services.audit import AuditLog
from ugem.core.services.mailqueue import QueueService
from ugem.core.store.base import AuditEntry
from ugem.core.store.sqlite import SqliteStore

NOW = 1_800_000_000.0
ACTOR = "api:postmaster"
# (domain, messages): each message is n minutes old, n from 0; the first half deferred
LOAD = {"mail.ru": 40, "gmail.com": 30, "yandex.kz": 20, "edu.kz": 6, "inbox.kz": 4}


def mail(n: int, domain: str, worker: int, minutes: float) -> QueuedMessage:
    data = b"From: <a@a.gov.kz>\r\nSubject: report %d\r\n\r\nSECRET BODY\r\n" % n
    return QueuedMessage(
        id=f"Q{worker}{n:010d}", sender="a@a.gov.kz", rcpts=[f"u{n}@{domain}"], data=data,
        size=len(data), connection="a.gov.kz" if n % 2 else "b.gov.kz", client_ip="10.0.0.1",
        received_at=NOW - minutes * 60,
        state=QueueState.DEFERRED if minutes < 20 else QueueState.ACTIVE,
    )  # fmt: skip


@dataclass
class Scene:
    spools: list[Spool]
    service: QueueService
    told: list[Event]
    store: SqliteStore
    clock: FakeClock

    async def audit(self) -> list[AuditEntry]:
        return await self.store.audit_log()

    async def text_of(self, queue_id: str) -> QueuedMessage | None:
        """The message with its text, from whichever spool holds it."""
        for spool in self.spools:
            if (found := await spool.get(queue_id)) is not None:
                return found
        return None

    async def everything(self) -> list[QueuedMessage]:
        return [m for s in self.spools for m in await s.list(limit=10_000)]


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    clock = FakeClock(NOW)
    spools = [Spool(tmp_path / f"queue-{w}.db", clock, Metrics()) for w in (0, 1)]
    store = SqliteStore(tmp_path / "registry.db")
    for spool in spools:
        await spool.open()
    n = 0
    for domain, count in LOAD.items():
        msgs = []
        for i in range(count):
            n += 1
            msgs.append(mail(n, domain, i % 2, minutes=i))
        await asyncio.gather(*(spools[int(m.id[1])].commit(m) for m in msgs))
    told: list[Event] = []
    queue = SpoolQueue(*spools, returner=Returner("gw.test", clock))
    service = QueueService(queue, AuditLog(store, clock), clock, told.append)
    try:
        yield Scene(spools, service, told, store, clock)
    finally:
        for spool in spools:
            await spool.close()
        await store.close()


async def test_the_summary_ranks_destinations_and_sums_the_rest(scene: Scene) -> None:
    shape = await scene.service.summary(top=3)
    assert shape.buckets == ("0-5", "5-10", "10-20", "20-40", "40-80", "80-160", "160-320", "320+")
    assert [(r.key, r.total) for r in shape.rows] == [
        ("mail.ru", 40),
        ("gmail.com", 30),
        ("yandex.kz", 20),
    ]
    assert shape.rows[0].counts == (5, 5, 10, 20, 0, 0, 0, 0)  # 0..39 minutes old
    assert shape.other is not None and shape.other.key == OTHER and shape.others == 2
    assert shape.other.counts == (5 + 4, 1, 0, 0, 0, 0, 0, 0)
    assert shape.total.total == 100 and shape.total.counts[3] == 20 + 10


async def test_the_summary_by_connection_under_a_filter(scene: Scene) -> None:
    shape = await scene.service.summary(Criteria(state="deferred"), by="connection")
    assert {r.key: r.total for r in shape.rows} == {"a.gov.kz": 35, "b.gov.kz": 35}
    assert shape.other is None and shape.total.total == 70
    scene.clock.advance(3600)  # an hour later, the same mail is older
    later = await scene.service.summary(Criteria(domain="inbox.kz"))
    assert later.total.counts == (0, 0, 0, 0, 4, 0, 0, 0)


@pytest.mark.parametrize(("by", "top", "named"), [("sender", 20, "by"), ("destination", 0, "top")])
async def test_a_bad_summary_option_is_named(scene: Scene, by: str, top: int, named: str) -> None:
    with pytest.raises(UsageError, match=f"^{named}: "):
        await scene.service.summary(by=by, top=top)


async def test_a_bulk_hold_by_filter_is_audited_once_and_journaled_per_message(
    scene: Scene,
) -> None:
    already = mail(2, "mail.ru", 1, minutes=1).id  # a message of mail.ru, held beforehand
    assert await scene.service.hold(already, ACTOR, "checked") == 1
    scene.told.clear()
    where = Criteria(domain="mail.ru", older_than="10m")
    n = await scene.service.bulk("hold", where, ACTOR, "mail.ru refuses us")
    assert n == 30  # 10..39 minutes old; the one held already was 1 minute old
    held = [m for m in await scene.everything() if m.state == QueueState.HELD]
    assert len(held) == 31
    assert {m.hold_reason for m in held if m.id != already} == {"mail.ru refuses us"}
    changes = [c for c in scene.told if isinstance(c, QueueChange)]
    assert len(changes) == 30 and {(c.event, c.actor, c.count) for c in changes} == {
        ("held", ACTOR, 1)
    }
    assert {c.queue_id for c in changes} == {m.id for m in held if m.id != already}
    entry = (await scene.audit())[0]
    assert (entry.action, entry.target, entry.reason) == (
        "queue.bulk-hold",
        "domain=mail.ru older_than=10m",
        "mail.ru refuses us",
    )
    assert json.loads(entry.details) == {
        "count": 30,
        "filter": {"domain": "mail.ru", "older_than": "10m"},
        "all": False,
    }
    again = await scene.service.bulk("release", where, ACTOR, "mail.ru takes mail again")
    assert again == 30 and (await scene.audit())[0].action == "queue.bulk-release"


async def test_a_bulk_action_goes_a_page_at_a_time(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mailqueue, "BULK_PAGE", 7)
    assert await scene.service.bulk("retry", Criteria(), ACTOR, "flushing", everything=True) == 70
    assert {m.state for m in await scene.everything()} == {QueueState.ACTIVE}
    assert not scene.told  # a retry changes no message's life: nothing to the mail log


async def test_dry_run_counts_and_changes_nothing(scene: Scene) -> None:
    where = Criteria(connection="a.gov.kz")
    assert await scene.service.bulk("delete", where, ACTOR, "", dry_run=True) == 50
    assert await scene.service.bulk("release", where, ACTOR, "", dry_run=True) == 0
    assert await scene.service.bulk("retry", where, ACTOR, "", dry_run=True) == 35
    assert len(await scene.everything()) == 100
    assert await scene.audit() == [] and scene.told == []


async def test_no_filter_needs_everything_and_a_change_needs_a_reason(scene: Scene) -> None:
    with pytest.raises(UsageError, match=r"^filter: none given"):
        await scene.service.bulk("delete", Criteria(), ACTOR, "spam")
    with pytest.raises(UsageError, match=r"^reason: empty"):
        await scene.service.bulk("delete", Criteria(domain="edu.kz"), ACTOR, " ")
    with pytest.raises(UsageError, match=r"^older_than: 'a while' is not a duration"):
        await scene.service.bulk("delete", Criteria(older_than="a while"), ACTOR, "old")
    assert len(await scene.everything()) == 100 and await scene.audit() == []
    assert await scene.service.bulk("delete", Criteria(), ACTOR, "test", everything=True) == 100
    assert await scene.everything() == []
    entry = (await scene.audit())[0]
    assert (entry.target, json.loads(entry.details)["all"]) == ("all", True)


async def test_a_bounce_by_filter_returns_each_message_to_its_sender(scene: Scene) -> None:
    bounce = mail(999, "inbox.kz", 1, minutes=2)
    bounce.id, bounce.sender = "Q1BOUNCE0001", ""  # a bounce is never bounced
    await scene.spools[1].commit(bounce)
    gone = {m.id for m in await scene.everything() if m.rcpts[0].endswith("@inbox.kz")}
    n = await scene.service.bulk("bounce", Criteria(domain="inbox.kz"), ACTOR, "spam run")
    assert n == 5
    left = await scene.everything()
    assert not gone & {m.id for m in left}
    dsns = [m for m in left if m.sender == ""]
    assert len(dsns) == 4 and {tuple(m.rcpts) for m in dsns} == {("a@a.gov.kz",)}
    assert {m.state for m in dsns} == {QueueState.ACTIVE}  # due now: the scheduler sends it
    dsn = await scene.text_of(dsns[0].id)
    assert dsn is not None and dsn.data is not None
    assert parse(dsn.data)["To"].addresses[0].addr_spec == "a@a.gov.kz"
    text, report, headers = parts(dsn.data)
    assert "deleted by the postmaster: spam run" in text.get_content()
    [_, rcpt] = status_groups(report)
    assert rcpt["Status"] == "5.0.0" and rcpt["Action"] == "failed"
    assert rcpt["Diagnostic-Code"] == "X-UGEM; deleted by the postmaster: spam run"
    assert "SECRET BODY" not in dsn.data.decode() and "Subject: report" in str(headers)
    returned = [c for c in scene.told if isinstance(c, QueueChange)]
    assert {c.queue_id for c in returned} == gone and {c.event for c in returned} == {"returned"}
    assert (await scene.audit())[0].action == "queue.bulk-bounce"


async def test_a_bounce_by_id_and_flush(scene: Scene) -> None:
    one = mail(1, "mail.ru", 0, minutes=0).id
    assert await scene.service.bounce(one, ACTOR) == 1
    [dsn] = [m for m in await scene.everything() if m.sender == ""]
    full = await scene.text_of(dsn.id)
    assert full is not None and full.data is not None
    assert b"Diagnostic-Code: X-UGEM; deleted by the postmaster\r\n" in full.data
    assert [(e.action, e.target) for e in await scene.audit()] == [("queue.bounce", one)]
    assert await scene.service.flush(ACTOR, "peer is back") == 69  # 70 deferred, one bounced
    entry = (await scene.audit())[0]
    assert (entry.action, entry.target, json.loads(entry.details)) == (
        "queue.flush",
        "deferred",
        {"count": 69},
    )
