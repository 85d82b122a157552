"""OverrideService over a real SQLite store on a FakeClock: set, in force, expire, cancel.

An override is in force from its start up to its end by the injected clock,
and not once cancelled; a ceiling is exceeded only above its limits. Every
bad field is a UsageError naming it; an unknown connection a NotFoundError;
an override overlapping another of the same connection, or cancelling one
that ended, a ConflictError. Setting and cancelling are audited with who and
why.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.connections import plain
from ugem.core.clock import FakeClock
from ugem.core.errors import ConflictError, NotFoundError, UsageError
from ugem.core.services.audit import AuditLog
from ugem.core.services.overrides import (
    MAX_CEILING_S,
    Override,
    OverrideKind,
    OverrideRequest,
    OverrideService,
)
from ugem.core.store.sqlite import SqliteStore

CONN = "akimat.gov.kz"
HOUR = 3600.0
CEILING, EXEMPT = OverrideKind.CEILING, OverrideKind.EXEMPT


@dataclass
class Scene:
    service: OverrideService
    clock: FakeClock

    def ceiling(self, hours: float = 2.0, **fields: Any) -> OverrideRequest:
        """A ceiling of 5000 messages an hour from now for `hours`, with `fields` changed."""
        end = self.clock.now() + hours * HOUR
        request = OverrideRequest(CONN, CEILING, "quarterly newsletter", None, end, False, 5000)
        return dataclasses.replace(request, **fields)


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    store, clock = SqliteStore(tmp_path / "u.db"), FakeClock()
    try:
        await store.add(plain(CONN))
        await store.add(plain("b.gov.kz"))
        yield Scene(OverrideService(store, AuditLog(store, clock), clock), clock)
    finally:
        await store.close()


async def test_a_ceiling_is_in_force_between_its_times_and_audited(scene: Scene) -> None:
    now = scene.clock.now()
    request = scene.ceiling(starts_at=now + HOUR, ends_at=now + 3 * HOUR)
    override = await scene.service.set(request, "api:noc")
    assert (override.connection, override.created_by, override.reason) == (
        CONN,
        "api:noc",
        "quarterly newsletter",
    )
    assert await scene.service.in_force(CONN) is None  # not yet
    scene.clock.advance(HOUR)
    assert await scene.service.in_force(CONN) == override
    assert await scene.service.in_force("b.gov.kz") is None
    scene.clock.advance(2 * HOUR)
    assert await scene.service.in_force(CONN) is None  # ended, by the clock
    assert await scene.service.in_force(CONN, at=now + 2 * HOUR) == override  # event time
    [entry] = [r.entry for r in await scene.service.audit.list(CONN)]
    assert (entry.actor, entry.action, entry.reason) == (
        "api:noc",
        "override.set",
        "quarterly newsletter",
    )
    assert override.id in entry.after


def test_a_ceiling_is_exceeded_only_above_a_limit_it_sets() -> None:
    both = Override("x", CONN, CEILING, 0.0, 1.0, "r", "a", 0.0, 100, 1000)
    assert not both.exceeded(100, 1000)
    assert both.exceeded(101, 0) and both.exceeded(0, 1001)
    messages_only = Override("x", CONN, CEILING, 0.0, 1.0, "r", "a", 0.0, 100, None)
    assert not messages_only.exceeded(100, 10**9)
    assert messages_only.ceiling() == "100 messages per hour"
    assert both.ceiling() == "100 messages, 1000 recipients per hour"


async def test_a_permanent_exemption_and_its_cancellation(scene: Scene) -> None:
    request = OverrideRequest("AKIMAT.gov.kz", EXEMPT, "agreed by letter", permanent=True)
    exemption = await scene.service.set(request, "api:root")
    assert exemption.ends_at is None and exemption.connection == CONN
    scene.clock.advance(10 * 366 * 86400.0)
    assert await scene.service.in_force(CONN) == exemption
    cancelled = await scene.service.cancel(exemption.id, "cli:ops", "letter withdrawn")
    assert (cancelled.cancelled_by, cancelled.cancel_reason) == ("cli:ops", "letter withdrawn")
    assert await scene.service.in_force(CONN) is None
    assert await scene.service.get(exemption.id) == cancelled
    with pytest.raises(ConflictError, match=r"ended on .*nothing to cancel"):
        await scene.service.cancel(exemption.id, "cli:ops")
    actions = [r.entry.action for r in await scene.service.audit.list(CONN)]
    assert actions == ["override.cancel", "override.set"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ends_at": None}, "ends_at: missing"),
        ({"hours": -1.0}, "ends_at: not after the start"),
        ({"hours": MAX_CEILING_S / HOUR + 1}, "ends_at: more than 31 days"),
        ({"starts_at": 1e12}, "starts_at: more than a year ahead"),
        ({"max_messages_per_hour": None}, "max_messages_per_hour: a ceiling needs"),
        ({"max_messages_per_hour": 0}, "max_messages_per_hour: 0 is not from 1"),
        ({"max_recipients_per_hour": 10**9}, "max_recipients_per_hour: 1000000000 is not"),
        ({"permanent": True}, "permanent: only an exemption"),
        ({"reason": "  "}, "reason: empty"),
        ({"reason": "x" * 2001}, "reason: 2001 characters"),
    ],
)
async def test_a_bad_ceiling_names_the_field(
    scene: Scene, fields: dict[str, Any], message: str
) -> None:
    hours = float(fields.pop("hours", 2.0))
    with pytest.raises(UsageError) as caught:
        await scene.service.set(scene.ceiling(hours, **fields), "api:noc")
    assert str(caught.value).startswith(message), caught.value
    assert await scene.service.list() == []


async def test_a_bad_exemption_names_the_field(scene: Scene) -> None:
    end = scene.clock.now() + HOUR
    for request, message in [
        (OverrideRequest(CONN, EXEMPT, "r", ends_at=end, permanent=True), "ends_at: a permanent"),
        (OverrideRequest(CONN, EXEMPT, "r", ends_at=end, max_messages_per_hour=5), "max_messages"),
        (OverrideRequest(CONN, EXEMPT, "r"), "ends_at: missing"),
    ]:
        with pytest.raises(UsageError, match=f"^{message}"):
            await scene.service.set(request, "api:noc")


async def test_unknown_connections_and_overrides_are_not_found(scene: Scene) -> None:
    for conn in ("nobody.gov.kz", "not a domain"):
        request = OverrideRequest(conn, EXEMPT, "r", permanent=True)
        with pytest.raises(NotFoundError, match="no connection"):
            await scene.service.set(request, "api:noc")
    with pytest.raises(NotFoundError, match="no override 'nope'"):
        await scene.service.get("nope")


async def test_overlapping_overrides_of_one_connection_conflict(scene: Scene) -> None:
    now = scene.clock.now()
    first = await scene.service.set(scene.ceiling(starts_at=now + HOUR, hours=3), "api:noc")
    with pytest.raises(ConflictError, match=f"override {first.id}: a ceiling .*cancel it first"):
        await scene.service.set(scene.ceiling(hours=2), "api:noc")
    permanent = OverrideRequest(CONN, EXEMPT, "r", starts_at=now + 2 * HOUR, permanent=True)
    with pytest.raises(ConflictError):
        await scene.service.set(permanent, "api:root")
    before = await scene.service.set(scene.ceiling(hours=1), "api:noc")  # ends as first starts
    after = await scene.service.set(
        OverrideRequest(CONN, EXEMPT, "r", starts_at=now + 3 * HOUR, permanent=True), "api:root"
    )
    other = await scene.service.set(
        OverrideRequest("b.gov.kz", EXEMPT, "r", permanent=True), "api:root"
    )
    assert [o.id for o in await scene.service.list(CONN)] == [after.id, first.id, before.id]
    scene.clock.advance(2 * HOUR)
    assert [o.id for o in await scene.service.list(CONN, current=True)] == [after.id, first.id]
    assert [o.status(scene.clock.now()) for o in await scene.service.list(CONN)] == [
        "to come",
        "in force",
        "ended",
    ]
    assert [o.id for o in await scene.service.list("B.GOV.KZ")] == [other.id]
