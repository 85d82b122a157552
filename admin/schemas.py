"""The JSON bodies of the admin API: pydantic models for what goes in and out.

Input models check shape and types (FastAPI answers 422 naming the field);
the service layer checks meaning and raises `UsageError` (also 422) naming
the field. Output models are built from the service's objects with
`from_*` helpers, so handlers stay one line. Unknown input fields are refused
(`extra="forbid"`), so a typo is an error, not a silent no-op, and so are
NaN and infinite numbers (`allow_inf_nan=False`). Times go out as RFC 3339 in
Asia/Almaty (`admin.times.Time`) and come in as RFC 3339 (an offset honoured,
Asia/Almaty without one) or Unix time (`admin.times.TIME_IN`); a list's answer is a
page (`admin.pages.PageOut`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from admin.pages import PageOut
from admin.times import TIME_IN, MaybeTime, Time
from ugem.core.errors import UsageError
from ugem.core.model import Connection, ConnState, Contact, Language, OrgKind
from ugem.core.paging import Page
from ugem.core.queue_filter import DURATION_HELP, Criteria
from ugem.core.queue_shape import By, QueueShape, ShapeRow
from ugem.core.services.applications import (
    Application,
    ApplicationForm,
    AppState,
    Channel,
    Decision,
    Finding,
)
from ugem.core.services.audit import Verdict
from ugem.core.services.complaints import Attribution, Complaint, Tally
from ugem.core.services.connections import ConnectionChange
from ugem.core.services.incidents import Action, Incident, IncidentKind, IncidentState, Mode
from ugem.core.services.mailqueue import MailItem, MailView, Verb
from ugem.core.services.overrides import MAX_RATE, Override, OverrideKind, OverrideRequest
from ugem.core.services.reputation import Listing, Report, Standing
from ugem.core.services.tokens import ApiToken, Role
from ugem.core.store.base import AuditRecord
from ugem.core.times import json_times, unix_time

TEXT = 2000  # longest free text (reasons), in characters
LAST_TIME = 32503680000  # 3000-01-01 (UTC): the latest time an input may name


class In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # NaN, inf: 422


class ContactBody(In):
    full_name: str = Field(min_length=1, max_length=300, description="surname, name, patronymic")
    email: str = Field(min_length=3, max_length=320)
    office_phone: str = Field("", max_length=40)
    mobile: str = Field("", max_length=40)

    def contact(self) -> Contact:
        return Contact(**self.model_dump())


class ScheduledDisconnectOut(BaseModel):
    at: Time = Field(description="when it takes effect")
    reason: str
    by: str = Field(description="who scheduled it")
    scheduled_at: Time


class ConnectionOut(BaseModel):
    id: str
    org_name: str
    kind: OrgKind
    domains: list[str]
    servers: list[str]
    contacts: list[ContactBody]
    language: Language
    state: ConnState
    state_reason: str
    state_changed_at: Time
    created_at: Time
    extra: dict[str, str]
    disconnect: ScheduledDisconnectOut | None = Field(
        None, description="a disconnection scheduled for later (paragraph 11)"
    )
    throttled: bool = Field(
        False,
        description="throttled by the anomaly detector now: its mail over its usual rate "
        "gets 451 4.7.1 (as this node sees it)",
    )

    @classmethod
    def of(cls, conn: Connection, throttled: bool = False) -> ConnectionOut:
        return cls.model_validate(conn.to_dict() | {"throttled": throttled})


class ConnectionPatch(In):
    org_name: str | None = Field(None, min_length=1, max_length=500)
    servers: list[str] | None = Field(None, min_length=1, max_length=256)
    domains: list[str] | None = Field(None, min_length=1, max_length=256)
    contacts: list[ContactBody] | None = Field(None, max_length=50)
    language: Language | None = None

    def change(self) -> ConnectionChange:
        contacts = None if self.contacts is None else [c.contact() for c in self.contacts]
        return ConnectionChange(self.org_name, self.servers, self.domains, contacts, self.language)


class Reason(In):
    reason: str = Field("", max_length=TEXT, description="why (kept in the audit log)")


class RequiredReason(In):
    reason: str = Field(min_length=1, max_length=TEXT, description="why (kept in the audit log)")


class DisconnectBody(In):
    reason: str = Field("", max_length=TEXT, description="why (kept in the audit log)")
    effective_at: dt.datetime | None = Field(
        None,
        description=f"when, as agreed with the organisation: {TIME_IN}; absent or past: now",
    )

    def when(self) -> float | None:
        """`effective_at` as Unix time (a time without a zone is Asia/Almaty time)."""
        return None if self.effective_at is None else unix_time(self.effective_at)


class Count(BaseModel):
    count: int = Field(description="messages changed")


class BulkAction(In):
    connection: str = Field(min_length=1, max_length=255, description="connection id")
    reason: str = Field("", max_length=TEXT)


class MailOut(BaseModel):
    id: str
    state: str
    sender: str
    rcpts: list[str]
    original_rcpts: list[str]
    size: int
    connection: str
    client_ip: str
    received_at: Time
    attempts: int
    next_attempt: MaybeTime = Field(description="the next delivery attempt; null: due now")
    last_error: str
    hold_reason: str

    @classmethod
    def of(cls, item: MailItem) -> MailOut:
        data = {k: v for k, v in vars(item).items() if k != "text"}
        return cls.model_validate(data)


class MailDetail(MailOut):
    headers: str
    body: str | None = None

    @classmethod
    def of_view(cls, view: MailView) -> MailDetail:
        base = MailOut.of(view.item).model_dump()
        return cls.model_validate(base | {"headers": view.headers, "body": view.body})


State = Literal["active", "deferred", "held"]
DURATION_IN = f"received this long ago: {DURATION_HELP}"
FILTER_FIELDS = tuple(f.name for f in dataclasses.fields(Criteria))


class QueueFilterIn(In):
    """Which queued messages (`ugem.core.queue_filter`): every field given must match."""

    state: State | None = None
    connection: str | None = Field(None, max_length=255, description="origin connection id")
    sender: str | None = Field(
        None, max_length=320, description="an address, @domain for anyone there, <> bounces"
    )
    recipient: str | None = Field(None, max_length=320, description="an address or @domain")
    domain: str | None = Field(
        None, max_length=255, description="a domain of the recipients still to deliver"
    )
    older_than: str | None = Field(None, max_length=40, description=DURATION_IN + " or more")
    newer_than: str | None = Field(None, max_length=40, description=DURATION_IN + " at most")

    def criteria(self) -> Criteria:
        return Criteria(**self.model_dump(include=set(FILTER_FIELDS)))


class QueueActionIn(QueueFilterIn):
    action: Verb = Field(description="hold, release, delete, retry (due now), or bounce")
    all: bool = Field(False, description="no filter: every queued message the action fits")
    reason: str = Field("", max_length=TEXT, description="why (audit log; needed unless dry_run)")
    dry_run: bool = Field(False, description="only count what it would change")


class QueueActionOut(BaseModel):
    action: Verb
    count: int = Field(description="messages changed (dry run: that it would change)")
    dry_run: bool
    filter: dict[str, str] = Field(description="the filter's fields given")


class ShapeRowOut(BaseModel):
    key: str = Field(description="a destination domain or connection; TOTAL; (other)")
    total: int
    counts: list[int] = Field(description="messages per age bucket, as `buckets`")

    @classmethod
    def of(cls, row: ShapeRow) -> ShapeRowOut:
        return cls(key=row.key, total=row.total, counts=list(row.counts))


class QueueShapeOut(BaseModel):
    by: By
    buckets: list[str] = Field(description="the age buckets, minutes since received")
    total: ShapeRowOut = Field(description="every message selected, once")
    rows: list[ShapeRowOut] = Field(description="the top rows, most messages first")
    other: ShapeRowOut | None = Field(description="the other rows summed; null: none")
    other_rows: int = Field(description="how many rows `other` sums")

    @classmethod
    def of(cls, shape: QueueShape) -> QueueShapeOut:
        other = None if shape.other is None else ShapeRowOut.of(shape.other)
        return cls(
            by=shape.by,
            buckets=list(shape.buckets),
            total=ShapeRowOut.of(shape.total),
            rows=[ShapeRowOut.of(r) for r in shape.rows],
            other=other,
            other_rows=shape.others,
        )


class AuditOut(BaseModel):
    seq: int
    hash: str
    prev: str
    ts: Time
    actor: str
    action: str
    target: str
    reason: str
    details: Any = Field(None, description="what else the action recorded (JSON)")
    before: Any = Field(None, description="the target before the change (JSON; times RFC 3339)")
    after: Any = Field(None, description="the target after the change (JSON; times RFC 3339)")

    @classmethod
    def of(cls, record: AuditRecord) -> AuditOut:
        e = record.entry
        return cls(
            seq=record.seq,
            hash=record.hash,
            prev=record.prev,
            ts=e.ts,
            actor=e.actor,
            action=e.action,
            target=e.target,
            reason=e.reason,
            details=json_times(_json(e.details)),
            before=json_times(_json(e.before)),
            after=json_times(_json(e.after)),
        )


class VerdictOut(BaseModel):
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    problems: list[str]

    @classmethod
    def of(cls, verdict: Verdict) -> VerdictOut:
        return cls(ok=verdict.ok, **vars(verdict))


class TokenCreate(In):
    name: str = Field(min_length=1, max_length=64)
    role: Role


class TokenOut(BaseModel):
    name: str
    role: Role
    created_at: Time
    created_by: str
    revoked_at: MaybeTime = Field(description="null: in force")

    @classmethod
    def of(cls, token: ApiToken) -> TokenOut:
        return cls.model_validate(token.public())


class TokenCreated(TokenOut):
    token: str = Field(description="the secret: shown this once, stored only as a hash")


def _json(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


class ApplicationBody(In):
    """The Rules' application form, as received."""

    number: str = Field(min_length=1, max_length=100, description="No. of the application")
    received_at: dt.datetime | None = Field(
        None, description=f"when received: {TIME_IN}; absent: now (1970 to 2999)"
    )
    channel: Channel = Field(Channel.APS, description="aps (support.sts.kz) or letter")
    domain: str = Field(min_length=1, max_length=255, description="the e-mail domain to connect")
    domain_owner: str = Field(min_length=1, max_length=500)
    servers: list[str] = Field(min_length=1, max_length=64, description="mail server addresses")
    org_name: str = Field(min_length=1, max_length=500)
    kind: str = Field(description="state-body, local-government, ..., or other")
    contacts: list[ContactBody] = Field(min_length=1, max_length=20)
    language: Language = Language.RU

    def form(self) -> ApplicationForm:
        data = self.model_dump(exclude={"contacts", "received_at"})
        received = None if self.received_at is None else unix_time(self.received_at)
        if received is not None and not 0 <= received < LAST_TIME:
            raise UsageError(f"received_at: {self.received_at} is not between 1970 and 2999")
        contacts = [c.contact() for c in self.contacts]
        return ApplicationForm(contacts=contacts, received_at=received, **data)


class FindingBody(In):
    name: str = Field(min_length=1, max_length=64)
    ok: bool
    note: str = Field("", max_length=TEXT)

    def finding(self) -> Finding:
        return Finding(self.name, self.ok, self.note)


class ChecksBody(In):
    findings: list[FindingBody] = Field(default_factory=list, max_length=50)


class DecisionBody(In):
    decision: Decision
    reasons: list[str] = Field(default_factory=list, max_length=20)


class FindingOut(BaseModel):
    name: str
    ok: bool
    note: str
    by: str


class ApplicationOut(BaseModel):
    id: str
    number: str
    domain: str
    domain_owner: str
    servers: list[str]
    org_name: str
    kind: str
    contacts: list[ContactBody]
    language: Language
    channel: Channel
    received_at: Time
    decision_due: str = Field(
        description="the day the decision is due, an Asia/Almaty date (YYYY-MM-DD): five "
        "working days after the day received"
    )
    overdue: bool
    recorded_by: str
    state: AppState
    checks: list[FindingOut]
    decided_at: MaybeTime = Field(description="null: not decided")
    decided_by: str
    reasons: list[str]

    @classmethod
    def of(cls, app: Application, today: dt.date) -> ApplicationOut:
        return cls.model_validate(app.to_dict() | {"overdue": app.overdue(today)})


class CommentBody(In):
    comment: str = Field(
        "", max_length=TEXT, description="the operator's comment (kept on the incident and audited)"
    )


class EvidenceOut(BaseModel):
    ts: Time = Field(description="when the detector decided")
    action: Action = Field(
        description="what was done: throttled, throttle-lifted, suspended, or only recorded "
        "(would-throttle, would-suspend, exempted)"
    )
    reason: str = Field(description="the detector's explanation, for a person")
    findings: list[str] = Field(description="the reason's findings, one each")
    numbers: dict[str, float] = Field(
        description="the traffic windows and the learned baseline behind the verdict"
    )


class SuspectOut(BaseModel):
    connection: str
    score: float = Field(description="its share of the rejections + its share of the evidence")
    attempts: int = Field(description="delivery attempts of its mail in the window")
    rejections: dict[str, int] = Field(
        description="replies refusing it, by class (blocklisted, spam-content, policy, "
        "unknown-user)"
    )
    complaints: int = Field(description="feedback-loop complaints about it in the window")
    anomaly: str = Field(description="what the anomaly detector holds against it, if anything")


class IncidentOut(BaseModel):
    id: int
    kind: IncidentKind = Field(
        description="connection: the anomaly detector's, about one connection; gateway: about "
        "the gateway itself (an address listed on a DNS blocklist, a burst of blocklisted "
        "replies)"
    )
    connection: str = Field(
        description="the connection's id; a gateway incident's subject: "
        "gateway:<address>@<zone> or gateway:blocklisted-replies"
    )
    state: IncidentState
    opened_at: Time
    mode: Mode = Field(
        description="enforce: throttled or suspended; shadow: only watched; alert: a gateway "
        "incident, the operators alerted"
    )
    action: Action = Field(
        description="the first verdict's, or the strongest enforced since (throttled, then "
        "suspended); a gateway incident: listed, delisted, blocklisted-replies"
    )
    addresses: list[str] = Field(description="a gateway incident: the addresses concerned")
    zone: str = Field(description="a listing: the DNSBL zone")
    blocklists: list[str] = Field(description="a gateway incident: the lists named")
    suspects: list[SuspectOut] = Field(
        description="a gateway incident: the connections whose mail left the gateway in the "
        "window before it, most suspect first (as of its latest verdict)"
    )
    reason: str = Field(description="the first verdict's reason")
    evidence: list[EvidenceOut] = Field(description="the first verdict and the latest ones")
    verdicts: int = Field(description="verdicts about the connection while this was open")
    last_verdict_at: Time
    acknowledged_at: Time | None
    acknowledged_by: str
    closed_at: Time | None
    closed_by: str
    comment: str

    @classmethod
    def of(cls, incident: Incident) -> IncidentOut:
        extra = {"reason": incident.reason, "last_verdict_at": incident.last_verdict_at}
        return cls.model_validate(incident.to_dict() | extra)


class OverrideBody(In):
    """A planned mailing's ceiling, or an exemption, for one connection."""

    connection: str = Field(min_length=1, max_length=255, description="connection id")
    kind: OverrideKind = Field(description="ceiling (a planned mass mailing) or exempt")
    reason: str = Field(min_length=1, max_length=TEXT, description="why (audited)")
    starts_at: dt.datetime | None = Field(None, description=f"{TIME_IN}; absent: now")
    ends_at: dt.datetime | None = Field(None, description=f"{TIME_IN}; required unless `permanent`")
    permanent: bool = Field(False, description="an exemption without an end (admin only)")
    max_messages_per_hour: int | None = Field(
        None, ge=1, le=MAX_RATE, description="ceiling: messages accepted in the last 60 min"
    )
    max_recipients_per_hour: int | None = Field(
        None, ge=1, le=MAX_RATE, description="ceiling: recipients of them"
    )

    def request(self) -> OverrideRequest:
        def unix(at: dt.datetime | None) -> float | None:
            return None if at is None else unix_time(at)

        data = self.model_dump(exclude={"starts_at", "ends_at"})
        return OverrideRequest(starts_at=unix(self.starts_at), ends_at=unix(self.ends_at), **data)


class OverrideOut(BaseModel):
    id: str
    connection: str
    kind: OverrideKind
    starts_at: Time
    ends_at: Time | None = Field(description="null: a permanent exemption")
    reason: str
    created_by: str
    created_at: Time
    max_messages_per_hour: int | None
    max_recipients_per_hour: int | None
    cancelled_at: Time | None
    cancelled_by: str
    cancel_reason: str
    in_force: bool = Field(description="in force now")
    status: str = Field(description="in force, to come, ended or cancelled (now)")

    @classmethod
    def of(cls, override: Override, now: float) -> OverrideOut:
        extra = {"in_force": override.in_force(now), "status": override.status(now)}
        return cls.model_validate(override.to_dict() | extra)


class StandingOut(BaseModel):
    address: str = Field(
        description="one of the gateway's outbound addresses ([node] public_addresses)"
    )
    zone: str = Field(description="the DNS blocklist (DNSBL zone) asked")
    state: Listing = Field(
        description="listed; clear; unusable: the list answered an error code, not a verdict "
        "(e.g. 127.255.255.254: Spamhaus refuses queries through a public resolver); "
        "unknown: no answer in time"
    )
    since: Time = Field(description="when a check first found this state")
    checked_at: Time = Field(description="the last check")
    reason: str = Field(
        description="listed: the list's TXT text; unusable, unknown: why there is no verdict"
    )
    codes: list[str] = Field(description="the A records the list answered")

    @classmethod
    def of(cls, standing: Standing) -> StandingOut:
        return cls.model_validate(dataclasses.asdict(standing))


class ReputationOut(BaseModel):
    watching: bool = Field(
        description="whether this process checks periodically (a node's worker 0, when "
        "[node] public_addresses and [reputation] dnsbl_zones are both set)"
    )
    interval: float = Field(description="seconds between two checks")
    addresses: list[str]
    zones: list[str]
    last_check: Time | None = Field(description="the last check; null: none yet")
    listed: bool = Field(description="whether any address is listed on any list")
    standings: int = Field(
        description="address and zone pairs checked: GET /v1/reputation/standings lists them"
    )

    @classmethod
    def of(cls, report: Report, watching: bool, interval: float) -> ReputationOut:
        return cls(
            watching=watching,
            interval=interval,
            addresses=list(report.addresses),
            zones=list(report.zones),
            last_check=report.last_check,
            listed=report.listed,
            standings=len(report.standings),
        )


class ComplaintOut(BaseModel):
    id: int = Field(description="its number, in the order complaints arrived")
    received_at: Time = Field(description="when it arrived")
    client_ip: str = Field(description="the address that sent it")
    sender: str = Field(description="its envelope sender")
    size: int = Field(description="bytes of the report")
    format: str = Field(
        description="arf (RFC 5965), dsn (RFC 3464), plain (an abuse report of another form) or "
        "unparsed (see problem)"
    )
    feedback_type: str = Field(
        description="arf: abuse, fraud, virus, other, not-spam or auth-failure; dsn: "
        "delivery-status; plain: abuse; unparsed: unknown"
    )
    reporter: str = Field(description="the report's From:")
    user_agent: str = Field(description="the report's User-Agent (arf)")
    connection: str = Field(description="the connection it was traced to; empty: not traced")
    attributed_by: Attribution = Field(
        description="how: queue_id (this gateway's Received: field in the original, naming the "
        "client's address), dkim (a DKIM-Signature's d= or i=), sender_domain "
        "(Original-Mail-From, Return-Path, From, Reported-Domain), none"
    )
    evidence: str = Field(description="what named the connection, or why nothing did")
    queue_id: str = Field(description="this gateway's queue id of the original, if it has one")
    message_id: str = Field(description="the original's Message-ID")
    original_mail_from: str
    original_rcpt_to: list[str]
    arrival_date: str
    source_ip: str
    reported_domains: list[str]
    fields: list[tuple[str, str]] = Field(description="the report's machine-readable fields")
    original_headers: list[tuple[str, str]] = Field(
        description="the original's header fields, the first 8 KiB"
    )
    problem: str = Field(description="what could not be read; empty when all was")
    truncated: bool = Field(description="only the first MiB of the report was read")

    @classmethod
    def of(cls, complaint: Complaint) -> ComplaintOut:
        return cls.model_validate(complaint.to_dict())


class ComplaintsOut(PageOut[ComplaintOut]):
    """A page of the complaints (newest first, as filtered) and the journal's tally."""

    received: int = Field(description="complaints received since the store began")
    kept: int = Field(description="complaints the store keeps (the newest)")
    dropped: int = Field(description="older complaints dropped to stay within the cap")
    cap: int = Field(description="most complaints kept")

    @classmethod
    def of(cls, tally: Tally, page: Page[Complaint]) -> ComplaintsOut:
        found = [ComplaintOut.of(c) for c in page.items]
        return cls(
            **dataclasses.asdict(tally),
            items=found,
            total=page.total,
            next_cursor=page.next_cursor,
        )
