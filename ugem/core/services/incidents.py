"""Incidents: what the anomaly detector found about a connection, or what befell the gateway
itself, until an operator closes it.

An incident has a kind: "connection" (the anomaly detector's, about one
connection) or "gateway" (about the gateway itself: one of its addresses
listed on a DNS blocklist, or a burst of replies refusing its mail as
blocklisted: `record_gateway`, from `ugem.core.services.gateway`). A gateway
incident's subject, which the store indexes where a connection's id goes,
is a key starting with `GATEWAY_PREFIX` ("gateway:198.51.100.25@zen.spamhaus.org",
"gateway:blocklisted-replies"), never a connection's id (those are domains);
it carries the addresses concerned, the zone of a listing, the blocklists
named and the connections suspected (`Suspect`, ranked, as of its latest
verdict), in mode "alert" (nothing was enforced: the operators were told).
Incidents stored before kinds existed read as kind "connection". All the
rules below hold for both kinds.

A connection's incident is opened on a verdict the enforcer acts on (`record`, actor
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from ugem.core.clock import Clock
from ugem.core.errors import ConflictError, NotFoundError, StoreError, UsageError
from ugem.core.paging import DEFAULT_LIMIT, Page, page_of
from ugem.core.services.audit import AuditLog
from ugem.core.services.overrides import connection_id
from ugem.core.store.base import IncidentRecord, Store
from ugem.core.times import rfc3339

MAX_EVIDENCE = 20  # verdicts kept in an incident: the first and the latest 19
MAX_COMMENT = 2000  # characters
MAX_ATTEMPTS = 20  # tries of one change when other writers keep changing the incident
_MAX_ID = 2**63 - 1
GATEWAY_PREFIX = "gateway:"  # the subject of a gateway incident; a connection's id is a domain


class IncidentKind(StrEnum):
    CONNECTION = "connection"  # the anomaly detector's, about one connection
    GATEWAY = "gateway"  # about the gateway itself (ugem.core.services.gateway)


class IncidentState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"


class Mode(StrEnum):
    ENFORCE = "enforce"  # the connection was throttled or suspended
    SHADOW = "shadow"  # it was only watched
    ALERT = "alert"  # a gateway incident: nothing was enforced, the operators were alerted


class Action(StrEnum):
    SUSPENDED = "suspended"
    WOULD_SUSPEND = "would-suspend"  # shadow mode
    EXEMPTED = "exempted"  # an exemption in force (ugem.core.services.overrides)
    THROTTLED = "throttled"  # mail over the usual rate deferred (ugem.core.throttle)
    LIFTED = "throttle-lifted"  # the throttle ended: the traffic is back to normal
    WOULD_THROTTLE = "would-throttle"  # shadow mode
    LISTED = "listed"  # an address of the gateway is listed on a DNS blocklist
    DELISTED = "delisted"  # it is not any more
    BLOCKLISTED_REPLIES = "blocklisted-replies"  # destinations refuse its mail as blocklisted


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
# The numbers of a gateway incident's evidence (ugem.core.services.gateway).
GATEWAY_NUMBERS: Mapping[str, str] = {
    "blocklisted_replies": "replies refusing our mail as blocklisted, within the burst window",
    "blocklisted_domains": "destination domains among them",
    "burst_window_min": "the burst window, in minutes",
    "rejections_window": "rejections (blocklisted, spam, policy, unknown user) in the window",
    "attempts_window": "delivery attempts of connections' mail in the window",
    "connections_window": "connections whose mail left the gateway in the window",
    "window_h": "the window, in hours",
}
READINGS: Mapping[str, str] = {
    **NUMBERS,
    CAP: "recipients per 5 min let through while throttled",
    **GATEWAY_NUMBERS,
}


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
class Suspect:
    """A connection a gateway incident names: its mail left through the gateway within the
    window, and this is what speaks against it (ranked by `score`, highest first)."""

    connection: str
    score: float  # its share of the rejections plus its share of the evidence: 0 to 2
    attempts: int  # delivery attempts of its mail (one a recipient) in the window
    rejections: Mapping[str, int]  # replies refusing it, by class (ugem.core.reply_tally)
    complaints: int  # feedback-loop complaints about it in the window
    anomaly: str = ""  # the detector's: "throttled", "incident 7 (suspended)"; "" none

    @property
    def rejected(self) -> int:
        return sum(self.rejections.values())

    def line(self) -> str:
        """One line a person reads: what it sent, what was refused, what else is known."""
        parts = [f"{self.rejected} of {self.attempts} delivery attempts rejected"]
        if self.rejections:
            parts[0] += " (" + ", ".join(f"{k} {n}" for k, n in self.rejections.items()) + ")"
        if self.complaints:
            parts.append(f"{self.complaints} complaint{'s' if self.complaints > 1 else ''}")
        if self.anomaly:
            parts.append(self.anomaly)
        return f"{self.connection}: {'; '.join(parts)} [score {self.score:.2f}]"


@dataclass(frozen=True)
class GatewayFacts:
    """What a gateway incident is about, and whom it names (`record_gateway`)."""

    addresses: tuple[str, ...]  # the gateway's addresses concerned
    zone: str = ""  # a listing: the DNSBL zone
    blocklists: tuple[str, ...] = ()  # the lists named: the zone, or those replies cite
    suspects: tuple[Suspect, ...] = ()  # ranked, most suspect first


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
    kind: IncidentKind = IncidentKind.CONNECTION
    addresses: tuple[str, ...] = ()  # a gateway incident's (GatewayFacts)
    zone: str = ""
    blocklists: tuple[str, ...] = ()
    suspects: tuple[Suspect, ...] = ()

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
        data["kind"] = self.kind.value
        data["addresses"], data["blocklists"] = list(self.addresses), list(self.blocklists)
        data["suspects"] = [asdict(s) | {"rejections": dict(s.rejections)} for s in self.suspects]
        return data

    def with_verdict(self, evidence: Evidence) -> Incident:
        kept = (*self.evidence, evidence)
        if len(kept) > MAX_EVIDENCE:
            kept = (kept[0], *kept[len(kept) - MAX_EVIDENCE + 1 :])
        grown = dataclasses.replace(self, evidence=kept, verdicts=self.verdicts + 1)
        if _STRENGTH.get(evidence.action, 0) > _STRENGTH.get(self.action, 0):
            return dataclasses.replace(grown, action=evidence.action, mode=Mode.ENFORCE)
        return grown

    def with_facts(self, evidence: Evidence, facts: GatewayFacts) -> Incident:
        """A gateway incident with one more verdict: its suspects are the verdict's, the
        blocklists named so far and now (in order) its lists."""
        grown = self.with_verdict(evidence)
        named = tuple(dict.fromkeys((*self.blocklists, *facts.blocklists)))
        return dataclasses.replace(grown, blocklists=named, suspects=facts.suspects)


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
        """Newest first; of `connection` (a connection id, any case, or a gateway incident's
        subject) if given."""
        if connection is not None and (connection := _subject(connection)) is None:
            return []  # not a domain: no connection has that id
        found = await self.store.incident_list(state, connection, limit)
        return [_decode(r) for r in found]

    async def page(
        self,
        state: IncidentState | None = None,
        connection: str | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[Incident]:
        """A page of `list` (newest first; keyset on the number: `ugem.core.paging`) and
        the total."""
        found = await self.list(state, connection, _MAX_ID)
        return page_of(found, lambda i: i.id, limit, cursor, "incidents", descending=True)

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
        fresh = Incident(0, connection, IncidentState.OPEN, evidence.ts, mode,
                         evidence.action, (evidence,))  # fmt: skip
        return await self._open_or_grow(fresh, actor, lambda i: i.with_verdict(evidence))

    async def record_gateway(
        self, subject: str, evidence: Evidence, actor: str, facts: GatewayFacts
    ) -> tuple[Incident, bool]:
        """Open a gateway incident of `subject` (a key starting with `GATEWAY_PREFIX`) for a
        verdict, or add it to the one not closed, its suspects replaced by `facts`'s;
        (the incident, whether it was opened now). UsageError for another subject."""
        if not subject.startswith(GATEWAY_PREFIX) or subject == GATEWAY_PREFIX:
            raise UsageError(f"subject: {subject!r} is not {GATEWAY_PREFIX}<what>")
        fresh = Incident(
            0, subject, IncidentState.OPEN, evidence.ts, Mode.ALERT, evidence.action,
            (evidence,), kind=IncidentKind.GATEWAY, addresses=facts.addresses,
            zone=facts.zone, blocklists=facts.blocklists, suspects=facts.suspects,
        )  # fmt: skip
        return await self._open_or_grow(fresh, actor, lambda i: i.with_facts(evidence, facts))

    async def _open_or_grow(
        self, fresh: Incident, actor: str, grow: Callable[[Incident], Incident]
    ) -> tuple[Incident, bool]:
        """Open `fresh`, or `grow` the incident of its subject that is not closed."""
        for _ in range(MAX_ATTEMPTS):
            stored, opened = await self.store.incident_open(fresh.connection, _encode(fresh))
            if opened:
                incident = _decode(stored)
                await self._audit_open(incident, actor)
                return incident, True
            grown = grow(_decode(stored))
            if await self.store.incident_update(_record(grown)):
                return dataclasses.replace(grown, rev=grown.rev + 1), False
        raise _busy(f"the incident of {fresh.connection}")

    async def note(self, connection: str, evidence: Evidence) -> Incident | None:
        """Add `evidence` to the incident of `connection` (or of a gateway subject) that is
        not closed; None when there is none (what only ends an action, a lifted throttle,
        a delisting, opens no incident)."""
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
        details: dict[str, Any] = {
            "incident": incident.id,
            "mode": incident.mode.value,
            "action": incident.action.value,
            "numbers": dict(first.numbers),
        }
        if incident.kind == IncidentKind.GATEWAY:
            details |= {"kind": incident.kind.value, "addresses": list(incident.addresses),
                        "zone": incident.zone, "blocklists": list(incident.blocklists),
                        "suspects": [s.connection for s in incident.suspects]}  # fmt: skip
        await self.audit.record(actor, "incident.open", incident.connection, first.reason,
                                details=details)  # fmt: skip


def _subject(text: str) -> str | None:
    """The stored subject `text` names: a gateway subject as it is, a connection's id
    canonical; None when it is neither."""
    return text if text.startswith(GATEWAY_PREFIX) else connection_id(text)


def _comment(text: str) -> str:
    text = text.strip()
    if len(text) > MAX_COMMENT:
        raise UsageError(f"comment: {len(text)} characters; at most {MAX_COMMENT}")
    return text


def _may_move(incident: Incident, to: IncidentState) -> None:
    ident = incident.id
    if incident.state == IncidentState.CLOSED:
        when = rfc3339(incident.closed_at or 0.0)
        raise ConflictError(
            f"incident {ident} was closed by {incident.closed_by} on {when}; a closed incident "
            "stays closed (the next verdict about the connection opens a new one)"
        )
    if incident.state == IncidentState.ACKNOWLEDGED and to == IncidentState.ACKNOWLEDGED:
        when = rfc3339(incident.acknowledged_at or 0.0)
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
            kind=IncidentKind(data.pop("kind", IncidentKind.CONNECTION)),  # older: connection
            addresses=_texts(data.pop("addresses", ())),
            blocklists=_texts(data.pop("blocklists", ())),
            suspects=tuple(_suspect(s) for s in data.pop("suspects", ())),
            **data,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StoreError(f"incident {record.id}: the stored incident is damaged: {exc}") from exc


def _texts(items: Sequence[Any]) -> tuple[str, ...]:
    if isinstance(items, str):
        raise TypeError(f"expected a list of strings, not {items!r}")
    return tuple(str(item) for item in items)


def _suspect(data: Mapping[str, Any]) -> Suspect:
    return Suspect(
        str(data["connection"]),
        float(data["score"]),
        int(data["attempts"]),
        {str(k): int(v) for k, v in data["rejections"].items()},
        int(data["complaints"]),
        str(data.get("anomaly", "")),
    )
