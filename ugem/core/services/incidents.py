"""Incidents: what the anomaly detector found about a connection, until an operator closes it.

An incident is opened on a verdict the enforcer acts on (`record`, actor
"detector"): mode "enforce" when it throttled or suspended the connection,
"shadow" when it only watched (shadow mode: "would-throttle",
"would-suspend"; or an exemption in force: action "exempted"). It keeps the
detector's evidence: the reason a person reads, its findings, and the
numbers behind them (`NUMBERS`: the traffic windows and the learned
baseline; a throttle adds its cap, `CAP`). A connection has at most one
incident that is not closed: a further verdict meanwhile is added to it (its
evidence, the first and the latest `MAX_EVIDENCE - 1`, and its count of
verdicts), it opens no other; an enforced action stronger than the
incident's (a suspension after a throttle) becomes its action, in mode
"enforce". The end of a throttle (`note`, action "throttle-lifted") is only
added to an incident not closed, and opens none.
Operators move it open -> acknowledged -> closed (closing an open one
directly is allowed), with an optional comment; a move that does not fit
the state is a `ConflictError` saying who did what when; an unknown number
a `NotFoundError`; a comment too long a `UsageError`. Opening, acknowledging
and closing are audited (target: the connection, details: the incident).
Concurrent writers (the detector adding evidence, two operators) never lose
a change: the store's update checks the revision read, and the change is
made again on the fresh copy. Damaged stored data is a `StoreError`.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from ugem.core.clock import Clock
from ugem.core.errors import ConflictError, NotFoundError, StoreError, UsageError
from ugem.core.services.audit import AuditLog
from ugem.core.services.notices import local_time
from ugem.core.services.overrides import connection_id
from ugem.core.store.base import IncidentRecord, Store

MAX_EVIDENCE = 20  # verdicts kept in an incident: the first and the latest 19
MAX_COMMENT = 2000  # characters
MAX_ATTEMPTS = 20  # tries of one change when other writers keep changing the incident
_MAX_ID = 2**63 - 1


class IncidentState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"


class Mode(StrEnum):
    ENFORCE = "enforce"  # the connection was throttled or suspended
    SHADOW = "shadow"  # it was only watched


class Action(StrEnum):
    SUSPENDED = "suspended"
    WOULD_SUSPEND = "would-suspend"  # shadow mode
    EXEMPTED = "exempted"  # an exemption in force (ugem.core.services.overrides)
    THROTTLED = "throttled"  # mail over the usual rate deferred (ugem.core.throttle)
    LIFTED = "throttle-lifted"  # the throttle ended: the traffic is back to normal
    WOULD_THROTTLE = "would-throttle"  # shadow mode


# How strong an enforced action is: a stronger one joining an incident becomes its action.
_STRENGTH = {Action.THROTTLED: 1, Action.SUSPENDED: 2}


def _windows() -> dict[str, str]:
    names = {
        "messages": "messages",
        "recipients": "recipients",
        "null_sender": "null-sender messages",
        "new_senders": "messages from senders never seen before",
        "deliveries": "delivery attempts",
        "bounced": "bounced",
        "unknown_recipients": "bounced as unknown recipients",
        "deferred": "deferred",
    }
    return {
        f"{key}_{w}m": f"{label} in the last {span}"
        for w, span in ((5, "5 min"), (60, "hour"))
        for key, label in names.items()
    }


# The numbers of the evidence, as the enforcer measures them, and how they read.
NUMBERS: Mapping[str, str] = {
    **_windows(),
    "recipient_domains_5m": "recipient domains in the last 5 min",
    "senders_5m": "envelope senders in the last 5 min",
    "top_pair_5m": "messages of the busiest sender->recipient pair in 5 min",
    "usual_recipients_5m": "usual recipients per 5 min at this time of week",
    "usual_spread_5m": "their usual spread (±)",
    "baseline_warm": "baseline learned (1) or still warming up (0)",
}
CAP = "throttle_cap_5m"  # a throttle's number beside the measured ones
READINGS: Mapping[str, str] = {**NUMBERS, CAP: "recipients per 5 min let through while throttled"}


@dataclass(frozen=True)
class Evidence:
    """One verdict: when (event time), what was done, the reason and its numbers."""

    ts: float
    action: Action
    reason: str
    numbers: Mapping[str, float] = field(default_factory=dict)

    @property
    def findings(self) -> tuple[str, ...]:
        """The findings the reason joins with "; ", one each."""
        return tuple(p.strip() for p in self.reason.split(";") if p.strip())

    def lines(self) -> builtins.list[str]:
        """The numbers as a person reads them, one a line, in the order of `READINGS`."""
        known = [k for k in READINGS if k in self.numbers]
        other = sorted(k for k in self.numbers if k not in READINGS)
        return [f"{READINGS.get(k, k)}: {self.numbers[k]:g}" for k in known + other]


@dataclass(frozen=True)
class Incident:
    id: int
    connection: str
    state: IncidentState
    opened_at: float
    mode: Mode
    action: Action
    evidence: tuple[Evidence, ...]
    verdicts: int = 1
    acknowledged_at: float | None = None
    acknowledged_by: str = ""
    closed_at: float | None = None
    closed_by: str = ""
    comment: str = ""
    rev: int = 1  # the store's revision this copy was read at

    @property
    def reason(self) -> str:
        return self.evidence[0].reason

    @property
    def last_verdict_at(self) -> float:
        return self.evidence[-1].ts

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["rev"]
        data["evidence"] = [asdict(e) | {"findings": list(e.findings)} for e in self.evidence]
        return data

    def with_verdict(self, evidence: Evidence) -> Incident:
        kept = (*self.evidence, evidence)
        if len(kept) > MAX_EVIDENCE:
            kept = (kept[0], *kept[len(kept) - MAX_EVIDENCE + 1 :])
        grown = dataclasses.replace(self, evidence=kept, verdicts=self.verdicts + 1)
        if _STRENGTH.get(evidence.action, 0) > _STRENGTH.get(self.action, 0):
            return dataclasses.replace(grown, action=evidence.action, mode=Mode.ENFORCE)
        return grown


class IncidentService:
    def __init__(self, store: Store, audit: AuditLog, clock: Clock) -> None:
        self.store = store
        self.audit = audit
        self.clock = clock

    async def list(
        self,
        state: IncidentState | None = None,
        connection: str | None = None,
        limit: int = 100,
    ) -> builtins.list[Incident]:
        """Newest first; of `connection` (a connection id, any case) if given."""
        if connection is not None and (connection := connection_id(connection)) is None:
            return []  # not a domain: no connection has that id
        found = await self.store.incident_list(state, connection, limit)
        return [_decode(r) for r in found]

    async def get(self, incident_id: int) -> Incident:
        record = None
        if 1 <= incident_id <= _MAX_ID:
            record = await self.store.incident_get(incident_id)
        if record is None:
            raise NotFoundError(f"no incident {incident_id}; `ugem incident list` shows them")
        return _decode(record)

    async def record(
        self, connection: str, mode: Mode, evidence: Evidence, actor: str
    ) -> tuple[Incident, bool]:
        """Open an incident of `connection` for a verdict, or add the verdict to the one
        not closed; (the incident, whether it was opened now)."""
        for _ in range(MAX_ATTEMPTS):
            fresh = Incident(0, connection, IncidentState.OPEN, evidence.ts, mode,
                             evidence.action, (evidence,))  # fmt: skip
            stored, opened = await self.store.incident_open(connection, _encode(fresh))
            if opened:
                incident = _decode(stored)
                await self._audit_open(incident, actor)
                return incident, True
            grown = _decode(stored).with_verdict(evidence)
            if await self.store.incident_update(_record(grown)):
                return dataclasses.replace(grown, rev=grown.rev + 1), False
        raise _busy(f"the incident of {connection}")

    async def note(self, connection: str, evidence: Evidence) -> Incident | None:
        """Add `evidence` to the incident of `connection` that is not closed; None when
        there is none (what only ends an action, a lifted throttle, opens no incident)."""
        for _ in range(MAX_ATTEMPTS):
            found = await self.store.incident_list(None, connection, 1)  # the newest
            if not found or found[0].state == IncidentState.CLOSED:
                return None
            grown = _decode(found[0]).with_verdict(evidence)
            if await self.store.incident_update(_record(grown)):
                return dataclasses.replace(grown, rev=grown.rev + 1)
        raise _busy(f"the incident of {connection}")

    async def acknowledge(self, incident_id: int, actor: str, comment: str = "") -> Incident:
        return await self._move(incident_id, IncidentState.ACKNOWLEDGED, actor, comment)

    async def close(self, incident_id: int, actor: str, comment: str = "") -> Incident:
        return await self._move(incident_id, IncidentState.CLOSED, actor, comment)

    async def _move(
        self, incident_id: int, to: IncidentState, actor: str, comment: str
    ) -> Incident:
        comment = _comment(comment)
        for _ in range(MAX_ATTEMPTS):
            incident = await self.get(incident_id)
            _may_move(incident, to)
            moved = _moved(incident, to, actor, self.clock.now(), comment)
            if await self.store.incident_update(_record(moved)):
                verb = "acknowledge" if to == IncidentState.ACKNOWLEDGED else "close"
                await self.audit.record(
                    actor, f"incident.{verb}", incident.connection, comment,
                    details={"incident": incident.id},
                    before={"state": incident.state.value}, after={"state": to.value},
                )  # fmt: skip
                return dataclasses.replace(moved, rev=moved.rev + 1)
        raise _busy(f"incident {incident_id}")

    async def _audit_open(self, incident: Incident, actor: str) -> None:
        first = incident.evidence[0]
        await self.audit.record(
            actor,
            "incident.open",
            incident.connection,
            first.reason,
            details={
                "incident": incident.id,
                "mode": incident.mode.value,
                "action": incident.action.value,
                "numbers": dict(first.numbers),
            },
        )


def _comment(text: str) -> str:
    text = text.strip()
    if len(text) > MAX_COMMENT:
        raise UsageError(f"comment: {len(text)} characters; at most {MAX_COMMENT}")
    return text


def _may_move(incident: Incident, to: IncidentState) -> None:
    ident = incident.id
    if incident.state == IncidentState.CLOSED:
        when = local_time(incident.closed_at or 0.0)
        raise ConflictError(
            f"incident {ident} was closed by {incident.closed_by} on {when}; a closed incident "
            "stays closed (the next verdict about the connection opens a new one)"
        )
    if incident.state == IncidentState.ACKNOWLEDGED and to == IncidentState.ACKNOWLEDGED:
        when = local_time(incident.acknowledged_at or 0.0)
        raise ConflictError(
            f"incident {ident} was acknowledged by {incident.acknowledged_by} on {when}; "
            "close it when it is dealt with"
        )


def _moved(incident: Incident, to: IncidentState, actor: str, now: float, comment: str) -> Incident:
    stamp: dict[str, Any] = {"state": to, "comment": comment or incident.comment}
    if to == IncidentState.ACKNOWLEDGED:
        stamp |= {"acknowledged_at": now, "acknowledged_by": actor}
    else:
        stamp |= {"closed_at": now, "closed_by": actor}
    return dataclasses.replace(incident, **stamp)


def _busy(what: str) -> StoreError:
    return StoreError(f"{what} kept changing under {MAX_ATTEMPTS} attempts; try again")


def _record(incident: Incident) -> IncidentRecord:
    return IncidentRecord(
        incident.id, incident.connection, incident.state.value, incident.rev, _encode(incident)
    )


def _encode(incident: Incident) -> str:
    """The JSON the store keeps beside the fields it indexes (id, connection, state, rev)."""
    data = incident.to_dict()
    for key in ("id", "connection", "state"):
        del data[key]
    for item in data["evidence"]:
        del item["findings"]
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def _decode(record: IncidentRecord) -> Incident:
    try:
        data = json.loads(record.data)
        evidence = tuple(
            Evidence(
                float(e["ts"]),
                Action(e["action"]),
                str(e["reason"]),
                {str(k): float(v) for k, v in e["numbers"].items()},
            )
            for e in data.pop("evidence")
        )
        return Incident(
            id=record.id,
            connection=record.connection,
            state=IncidentState(record.state),
            mode=Mode(data.pop("mode")),
            action=Action(data.pop("action")),
            evidence=evidence,
            rev=record.rev,
            **data,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StoreError(f"incident {record.id}: the stored incident is damaged: {exc}") from exc
