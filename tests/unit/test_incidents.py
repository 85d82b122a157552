"""IncidentService over a real SQLite store on a FakeClock: open, add to, acknowledge, close.

One incident not closed per connection: a further verdict joins it (its
evidence keeps the first and the latest), a closed one makes way for a new
one. Moves go open -> acknowledged -> closed (or open -> closed), each
stamped with who and when and audited with the operator's actor; a move that
does not fit is a ConflictError saying who did what; an unknown number is a
NotFoundError. A change made by another writer between a read and a write
is kept, not overwritten. An enforced action stronger than the incident's (a
suspension after a throttle) becomes its action; a lifted throttle only
joins an incident not closed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ugem.core.clock import FakeClock
from ugem.core.errors import ConflictError, NotFoundError, StoreError, UsageError
from ugem.core.services.audit import AuditLog
from ugem.core.services.incidents import (
    MAX_EVIDENCE,
    Action,
    Evidence,
    GatewayFacts,
    IncidentKind,
    IncidentService,
    IncidentState,
    Mode,
    Suspect,
)
from ugem.core.store.base import IncidentRecord
from ugem.core.store.sqlite import SqliteStore

CONN = "akimat.gov.kz"


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[IncidentService]:
    store, clock = SqliteStore(tmp_path / "u.db"), FakeClock()
    try:
        yield IncidentService(store, AuditLog(store, clock), clock)
    finally:
        await store.close()


def evidence(ts: float, reason: str = "412 recipients in 5 min; 40 % unknown") -> Evidence:
    return Evidence(ts, Action.SUSPENDED, reason, {"recipients_5m": 412.0, "baseline_warm": 1.0})


async def test_a_verdict_opens_one_incident_and_later_ones_join_it(
    service: IncidentService,
) -> None:
    first, opened = await service.record(CONN, Mode.ENFORCE, evidence(10.0), "detector")
    assert opened and first.id == 1 and first.opened_at == 10.0
    assert first.reason == "412 recipients in 5 min; 40 % unknown"
    for i in range(MAX_EVIDENCE + 5):
        joined, opened = await service.record(CONN, Mode.ENFORCE, evidence(20.0 + i), "detector")
        assert not opened and joined.id == 1
    shown = await service.get(1)
    assert shown.verdicts == MAX_EVIDENCE + 6
    assert len(shown.evidence) == MAX_EVIDENCE
    assert shown.evidence[0].ts == 10.0 and shown.last_verdict_at == 20.0 + MAX_EVIDENCE + 4
    assert shown.evidence[0].findings == ("412 recipients in 5 min", "40 % unknown")
    [entry] = [r.entry for r in await service.audit.list(CONN)]
    assert (entry.actor, entry.action, entry.reason) == ("detector", "incident.open", first.reason)
    assert '"incident": 1' in entry.details and '"recipients_5m": 412.0' in entry.details


async def test_a_suspension_after_a_throttle_becomes_the_incidents_action(
    service: IncidentService,
) -> None:
    throttled = dataclasses.replace(evidence(10.0), action=Action.THROTTLED)
    would = dataclasses.replace(evidence(5.0), action=Action.WOULD_THROTTLE)
    await service.record(CONN, Mode.SHADOW, would, "detector")  # an exemption, say
    await service.record(CONN, Mode.ENFORCE, throttled, "detector")
    shown = await service.get(1)
    assert (shown.mode, shown.action) == (Mode.ENFORCE, Action.THROTTLED)  # now enforced
    await service.record(CONN, Mode.ENFORCE, evidence(20.0), "detector")
    shown = await service.get(1)
    assert (shown.mode, shown.action) == (Mode.ENFORCE, Action.SUSPENDED)
    later = dataclasses.replace(evidence(30.0), action=Action.THROTTLED)
    await service.record(CONN, Mode.ENFORCE, later, "detector")  # weaker: it stays suspended
    shown = await service.get(1)
    assert shown.action == Action.SUSPENDED
    assert [e.action for e in shown.evidence] == [
        Action.WOULD_THROTTLE,
        Action.THROTTLED,
        Action.SUSPENDED,
        Action.THROTTLED,
    ]


async def test_a_lift_joins_the_incident_not_closed_and_opens_none(
    service: IncidentService,
) -> None:
    lifted = Evidence(30.0, Action.LIFTED, "no throttling evidence for 15 min")
    assert await service.note(CONN, lifted) is None  # no incident: none opened
    assert await service.list() == []
    throttled = dataclasses.replace(evidence(10.0), action=Action.THROTTLED)
    await service.record(CONN, Mode.ENFORCE, throttled, "detector")
    await service.acknowledge(1, "api:noc")
    noted = await service.note(CONN, lifted)
    assert noted is not None and noted.id == 1 and noted.verdicts == 2
    shown = await service.get(1)
    assert [e.action for e in shown.evidence] == [Action.THROTTLED, Action.LIFTED]
    assert (shown.action, shown.state) == (Action.THROTTLED, IncidentState.ACKNOWLEDGED)
    await service.close(1, "api:noc")
    assert await service.note(CONN, lifted) is None
    assert [i.id for i in await service.list()] == [1]


async def test_acknowledge_then_close_stamped_and_audited(service: IncidentService) -> None:
    await service.record(CONN, Mode.SHADOW, evidence(10.0), "detector")
    clock = service.clock
    assert isinstance(clock, FakeClock)
    clock.advance(60)
    acked = await service.acknowledge(1, "api:noc", "  looking  ")
    assert acked.state == IncidentState.ACKNOWLEDGED
    assert (acked.acknowledged_by, acked.acknowledged_at) == ("api:noc", service.clock.now())
    assert acked.comment == "looking"
    closed = await service.close(1, "cli:ops")
    assert (closed.state, closed.closed_by, closed.comment) == (
        IncidentState.CLOSED,
        "cli:ops",
        "looking",  # kept: closing said nothing new
    )
    assert await service.get(1) == closed
    entries = [r.entry for r in await service.audit.list(CONN)]
    assert [(e.actor, e.action) for e in entries] == [
        ("cli:ops", "incident.close"),
        ("api:noc", "incident.acknowledge"),
        ("detector", "incident.open"),
    ]
    assert entries[0].before == '{"state": "acknowledged"}'
    assert entries[0].after == '{"state": "closed"}'
    again, opened = await service.record(CONN, Mode.SHADOW, evidence(99.0), "detector")
    assert opened and again.id == 2


async def test_moves_that_do_not_fit_say_who_did_what(service: IncidentService) -> None:
    await service.record(CONN, Mode.ENFORCE, evidence(10.0), "detector")
    closed = await service.close(1, "api:noc", "false alarm")  # from open directly
    assert closed.comment == "false alarm"
    with pytest.raises(ConflictError, match=r"incident 1 was closed by api:noc on .*stays closed"):
        await service.acknowledge(1, "api:other")
    with pytest.raises(ConflictError, match="was closed by api:noc"):
        await service.close(1, "api:other")
    await service.record("b.gov.kz", Mode.ENFORCE, evidence(10.0), "detector")
    await service.acknowledge(2, "api:noc")
    with pytest.raises(ConflictError, match=r"acknowledged by api:noc on .*close it when"):
        await service.acknowledge(2, "api:other")
    assert (await service.get(2)).acknowledged_by == "api:noc"


async def test_unknown_numbers_and_long_comments_are_refused(service: IncidentService) -> None:
    for number in (1, 0, -3, 2**70):
        with pytest.raises(NotFoundError, match=f"no incident {number}"):
            await service.get(number)
    await service.record(CONN, Mode.ENFORCE, evidence(10.0), "detector")
    with pytest.raises(UsageError, match=r"^comment: 2001 characters"):
        await service.close(1, "api:noc", "x" * 2001)
    assert (await service.get(1)).state == IncidentState.OPEN


async def test_list_filters_by_state_and_connection_in_any_case(
    service: IncidentService,
) -> None:
    for conn in (CONN, "b.gov.kz", "c.gov.kz"):
        await service.record(conn, Mode.ENFORCE, evidence(10.0), "detector")
    await service.close(2, "api:noc")
    assert [i.id for i in await service.list()] == [3, 2, 1]
    assert [i.id for i in await service.list(IncidentState.OPEN)] == [3, 1]
    assert [i.id for i in await service.list(connection="AKIMAT.gov.kz")] == [1]
    assert await service.list(connection="not a domain") == []
    assert [i.id for i in await service.list(limit=1)] == [3]


class MeddlingStore(SqliteStore):
    """A store where another writer acknowledges incident 1 just before our first update."""

    meddler: IncidentService | None = None

    async def incident_update(self, record: IncidentRecord) -> bool:
        meddler, self.meddler = self.meddler, None
        if meddler is not None:
            await meddler.acknowledge(1, "api:other", "mine")
        return await super().incident_update(record)


async def test_a_change_by_another_writer_meanwhile_is_kept(tmp_path: Path) -> None:
    path, clock = tmp_path / "u.db", FakeClock()
    store, other = MeddlingStore(path), SqliteStore(path)
    try:
        service = IncidentService(store, AuditLog(store, clock), clock)
        await service.record(CONN, Mode.ENFORCE, evidence(10.0), "detector")
        store.meddler = IncidentService(other, AuditLog(other, clock), clock)
        joined, opened = await service.record(CONN, Mode.ENFORCE, evidence(20.0), "detector")
        assert not opened and joined.verdicts == 2
        shown = await service.get(1)
        assert (shown.state, shown.acknowledged_by, shown.verdicts) == (
            IncidentState.ACKNOWLEDGED,
            "api:other",
            2,
        )
    finally:
        await other.close()
        await store.close()


async def test_an_incident_stored_before_kinds_reads_as_a_connections(
    service: IncidentService,
) -> None:
    incident, _ = await service.record(CONN, Mode.ENFORCE, evidence(10.0), "detector")
    stored = await service.store.incident_get(incident.id)
    assert stored is not None
    old = json.loads(stored.data)
    for key in ("kind", "addresses", "zone", "blocklists", "suspects"):
        del old[key]
    await service.store.incident_update(dataclasses.replace(stored, data=json.dumps(old)))
    read = await service.get(incident.id)
    assert read == dataclasses.replace(incident, rev=2)
    assert read.kind == IncidentKind.CONNECTION and read.to_dict()["kind"] == "connection"


async def test_a_gateway_incident_moves_and_is_audited_like_the_others(
    service: IncidentService,
) -> None:
    subject = "gateway:198.51.100.25@zen.spamhaus.org"
    listed = Evidence(10.0, Action.LISTED, "listed on zen.spamhaus.org", {"window_h": 6.0})
    suspect = Suspect(CONN, 0.875, 7, {"blocklisted": 6, "spam-content": 1}, 2)
    facts = GatewayFacts(("198.51.100.25",), "zen.spamhaus.org", ("zen.spamhaus.org",), (suspect,))
    incident, opened = await service.record_gateway(subject, listed, "reputation", facts)
    assert opened and (incident.mode, incident.kind) == (Mode.ALERT, IncidentKind.GATEWAY)
    assert incident.to_dict()["suspects"] == [
        {"connection": CONN, "score": 0.875, "attempts": 7, "complaints": 2, "anomaly": "",
         "rejections": {"blocklisted": 6, "spam-content": 1}},
    ]  # fmt: skip
    gone = Evidence(20.0, Action.DELISTED, "not listed any more", {})
    noted = await service.note(subject, gone)
    assert noted is not None and noted.verdicts == 2 and noted.suspects == (suspect,)
    await service.acknowledge(incident.id, "cli:noc")
    closed = await service.close(incident.id, "cli:noc", "delisted; mdai.gov.kz warned")
    assert closed.state == IncidentState.CLOSED
    assert await service.note(subject, gone) is None  # a delisting opens none
    records = await service.audit.list(subject)
    assert [r.entry.action for r in records] == [
        "incident.close", "incident.acknowledge", "incident.open",
    ]  # fmt: skip
    details = json.loads(records[-1].entry.details)
    assert (details["kind"], details["zone"], details["suspects"]) == (
        "gateway", "zen.spamhaus.org", [CONN],
    )  # fmt: skip


async def test_damaged_stored_incident_is_a_store_error(service: IncidentService) -> None:
    record, _ = await service.store.incident_open(CONN, '{"mode": "enforce"}')
    with pytest.raises(StoreError, match="incident 1: the stored incident is damaged"):
        await service.get(record.id)
    fixed = dataclasses.replace(record, data="not json")
    await service.store.incident_update(fixed)
    with pytest.raises(StoreError):
        await service.list()
