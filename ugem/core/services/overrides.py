"""Per-connection overrides of the anomaly detector: a planned mailing's ceiling, an exemption.

A **ceiling** covers a planned mass mailing from `starts_at` to `ends_at`
(at most `MAX_CEILING_S`): while it is in force, a verdict of the detector
about the connection is acted on only if the connection's traffic in the
last 60 minutes (sliding, in event time: messages accepted, and recipients
of them) exceeds `max_messages_per_hour` or `max_recipients_per_hour`
(either or both are set; `exceeded`). An **exemption** (timed, at most
`MAX_EXEMPT_S`, or explicitly `permanent`) means the connection is never
suspended: its verdicts still open an incident, in shadow mode, recorded as
"exempted" (anomaly.enforce does both). An override is in force from its
start up to, not including, its end, by the time given (the node's injected
clock, or the event time of a verdict); a cancelled one is not. Overrides of
one connection may not overlap (a `ConflictError` naming the other: cancel
it first). Every override says why, and setting and cancelling it are
audited with who and when; ended ones are kept for the record. Errors: a
bad field is a `UsageError` naming it, an unknown connection or override a
`NotFoundError`, cancelling one that ended a `ConflictError`.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import math
import secrets
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from ugem.core.clock import Clock
from ugem.core.errors import ConflictError, NotFoundError, StoreError, UsageError
from ugem.core.names import canonical_domain
from ugem.core.paging import DEFAULT_LIMIT, Page, page_of
from ugem.core.services.audit import AuditLog
from ugem.core.store.base import Store
from ugem.core.times import local_date, rfc3339

KIND = "override"
DAY = 86400.0
MAX_CEILING_S = 31 * DAY  # a planned mailing's ceiling lasts a month at most
MAX_EXEMPT_S = 366 * DAY  # a timed exemption a year at most (longer: permanent, explicitly)
MAX_AHEAD_S = 366 * DAY  # the latest start, from now
MAX_RATE = 10_000_000  # per hour, the highest ceiling
MAX_REASON = 2000  # characters


class OverrideKind(StrEnum):
    CEILING = "ceiling"
    EXEMPT = "exempt"


@dataclass(frozen=True)
class OverrideRequest:
    """What an operator asks for (input to `OverrideService.set`)."""

    connection: str
    kind: OverrideKind
    reason: str
    starts_at: float | None = None  # default (and at the earliest): now
    ends_at: float | None = None  # required unless permanent
    permanent: bool = False  # an exemption without an end
    max_messages_per_hour: int | None = None
    max_recipients_per_hour: int | None = None


@dataclass(frozen=True)
class Override:
    id: str
    connection: str
    kind: OverrideKind
    starts_at: float
    ends_at: float | None  # None: a permanent exemption
    reason: str
    created_by: str
    created_at: float
    max_messages_per_hour: int | None = None
    max_recipients_per_hour: int | None = None
    cancelled_at: float | None = None
    cancelled_by: str = ""
    cancel_reason: str = ""

    def in_force(self, ts: float) -> bool:
        return self.cancelled_at is None and self.starts_at <= ts < self._end

    def ended(self, ts: float) -> bool:
        """Cancelled, or past its end: it will never be in force again."""
        return self.cancelled_at is not None or ts >= self._end

    def status(self, ts: float) -> str:
        """'in force', 'to come', 'ended' or 'cancelled' at `ts`."""
        if self.cancelled_at is not None:
            return "cancelled"
        if self.in_force(ts):
            return "in force"
        return "ended" if self.ended(ts) else "to come"

    @property
    def _end(self) -> float:
        return math.inf if self.ends_at is None else self.ends_at

    def overlaps(self, other: Override) -> bool:
        return self.starts_at < other._end and other.starts_at < self._end

    def exceeded(self, messages: int, recipients: int) -> bool:
        """Whether an hour's traffic is above this ceiling (never, for an exemption)."""
        over_msgs = self.max_messages_per_hour is not None and messages > self.max_messages_per_hour
        over_rcpts = (
            self.max_recipients_per_hour is not None and recipients > self.max_recipients_per_hour
        )
        return over_msgs or over_rcpts

    def ceiling(self) -> str:
        """'5000 messages, 20000 recipients per hour' (the limits that are set)."""
        parts = [f"{self.max_messages_per_hour} messages"] if self.max_messages_per_hour else []
        if self.max_recipients_per_hour:
            parts.append(f"{self.max_recipients_per_hour} recipients")
        return ", ".join(parts) + " per hour"

    def span(self) -> str:
        """'from 2025-03-01T10:00:00+05:00 until 2025-03-01T14:00:00+05:00', or 'permanent
        from ...' (`ugem.core.times.rfc3339`: Asia/Almaty with the offset)."""
        start = rfc3339(self.starts_at)
        if self.ends_at is None:
            return f"permanent from {start}"
        return f"from {start} until {rfc3339(self.ends_at)}"

    def describe(self) -> str:
        """One line: what it is, for how long, by whom and why."""
        what = f"a ceiling of {self.ceiling()}" if self.kind == OverrideKind.CEILING else "exempt"
        return f"override {self.id}: {what} {self.span()} (set by {self.created_by}: {self.reason})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class OverrideService:
    def __init__(self, store: Store, audit: AuditLog, clock: Clock) -> None:
        self.store = store
        self.audit = audit
        self.clock = clock

    async def list(
        self, connection: str | None = None, current: bool = False
    ) -> builtins.list[Override]:
        """Overrides, newest start first; of `connection` (any case) if given; `current`:
        only those not ended (in force or to come)."""
        now, wanted = self.clock.now(), None if connection is None else connection_id(connection)
        found = [
            o
            for o in await self._all()
            if (connection is None or o.connection == wanted) and not (current and o.ended(now))
        ]
        return sorted(found, key=_order, reverse=True)

    async def page(
        self,
        connection: str | None = None,
        current: bool = False,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[Override]:
        """A page of `list` (newest start first; keyset on (start, id): `ugem.core.paging`)
        and the total."""
        found = await self.list(connection, current)
        key = _order
        return page_of(found, key, limit, cursor, "overrides", descending=True)

    async def get(self, override_id: str) -> Override:
        data = await self.store.doc_get(KIND, override_id)
        if data is None:
            raise NotFoundError(f"no override {override_id!r}; `ugem override list` shows them")
        return _decode(data, override_id)

    async def in_force(self, connection: str, at: float | None = None) -> Override | None:
        """The override of `connection` in force at `at` (default: now), if any."""
        ts = self.clock.now() if at is None else at
        mine = [o for o in await self._all() if o.connection == connection]
        return next((o for o in mine if o.in_force(ts)), None)

    async def set(self, request: OverrideRequest, actor: str) -> Override:
        now = self.clock.now()
        conn_id = await self._connection(request.connection)
        override = _validated(request, conn_id, actor, now)
        for other in await self.list(conn_id, current=True):
            if other.overlaps(override):
                raise ConflictError(
                    f"{other.describe()} covers part of that time; cancel it first "
                    "or choose other times"
                )
        await self.store.doc_add(KIND, override.id, _encode(override))
        await self.audit.record(
            actor, "override.set", conn_id, override.reason, after=override.to_dict()
        )
        return override

    async def cancel(self, override_id: str, actor: str, reason: str = "") -> Override:
        old = await self.get(override_id)
        now = self.clock.now()
        if old.ended(now):
            when = old.cancelled_at if old.cancelled_at is not None else old.ends_at
            raise ConflictError(
                f"override {old.id} ended on {rfc3339(when or now)}; nothing to cancel"
            )
        new = dataclasses.replace(
            old, cancelled_at=now, cancelled_by=actor, cancel_reason=_reason(reason, False)
        )
        await self.store.doc_put(KIND, new.id, _encode(new))
        await self.audit.record(
            actor, "override.cancel", new.connection, new.cancel_reason,
            details={"override": new.id}, before=old.to_dict(), after=new.to_dict(),
        )  # fmt: skip
        return new

    async def _all(self) -> builtins.list[Override]:
        return [_decode(data, ident) for ident, data in await self.store.doc_list(KIND)]

    async def _connection(self, value: str) -> str:
        conn_id = connection_id(value)
        if conn_id is None or await self.store.get(conn_id) is None:
            raise NotFoundError(f"no connection {value!r}; `ugem connection list` shows them")
        return conn_id


def _order(override: Override) -> tuple[float, str]:
    """The key the overrides are listed by (newest start first)."""
    return override.starts_at, override.id


def connection_id(value: str) -> str | None:
    """`value` as a connection id (its canonical domain), or None if it cannot be one."""
    try:
        return canonical_domain(value)
    except ValueError:
        return None


def _validated(request: OverrideRequest, conn_id: str, actor: str, now: float) -> Override:
    start = now if request.starts_at is None else max(request.starts_at, now)
    if start > now + MAX_AHEAD_S:
        raise UsageError("starts_at: more than a year ahead; set it nearer the time")
    end = _end(request, start)
    limits = _limits(request)
    return Override(
        id=f"{local_date(now):%Y%m%d}-{secrets.token_hex(3)}",
        connection=conn_id,
        kind=request.kind,
        starts_at=start,
        ends_at=end,
        reason=_reason(request.reason, True),
        created_by=actor,
        created_at=now,
        max_messages_per_hour=limits[0],
        max_recipients_per_hour=limits[1],
    )


def _end(request: OverrideRequest, start: float) -> float | None:
    exempt = request.kind == OverrideKind.EXEMPT
    if request.permanent:
        if not exempt:
            raise UsageError("permanent: only an exemption may be permanent; a ceiling ends")
        if request.ends_at is not None:
            raise UsageError("ends_at: a permanent exemption has no end; give one or the other")
        return None
    if request.ends_at is None:
        raise UsageError("ends_at: missing; an override ends (or is a permanent exemption)")
    if request.ends_at <= start:
        raise UsageError(f"ends_at: not after the start ({rfc3339(start)})")
    longest = MAX_EXEMPT_S if exempt else MAX_CEILING_S
    if request.ends_at - start > longest:
        days = int(longest // DAY)
        raise UsageError(f"ends_at: more than {days} days after the start; at most {days}")
    return request.ends_at


def _limits(request: OverrideRequest) -> tuple[int | None, int | None]:
    limits = (request.max_messages_per_hour, request.max_recipients_per_hour)
    if request.kind == OverrideKind.EXEMPT:
        if any(v is not None for v in limits):
            raise UsageError("max_messages_per_hour: an exemption has no ceiling; it is exempt")
        return limits
    if all(v is None for v in limits):
        raise UsageError(
            "max_messages_per_hour: a ceiling needs max_messages_per_hour, "
            "max_recipients_per_hour or both"
        )
    for name, value in zip(
        ("max_messages_per_hour", "max_recipients_per_hour"), limits, strict=True
    ):
        if value is not None and not 1 <= value <= MAX_RATE:
            raise UsageError(f"{name}: {value} is not from 1 to {MAX_RATE}")
    return limits


def _reason(text: str, required: bool) -> str:
    text = text.strip()
    if required and not text:
        raise UsageError("reason: empty; say why (the planned mailing, the agreement)")
    if len(text) > MAX_REASON:
        raise UsageError(f"reason: {len(text)} characters; at most {MAX_REASON}")
    return text


def _encode(override: Override) -> str:
    return json.dumps(override.to_dict(), ensure_ascii=False, sort_keys=True)


def _decode(data: str, override_id: str) -> Override:
    try:
        fields = json.loads(data)
        fields["kind"] = OverrideKind(fields["kind"])
        return Override(**fields)
    except (ValueError, TypeError, KeyError) as exc:
        raise StoreError(
            f"override {override_id!r}: the stored override is damaged: {exc}"
        ) from exc
