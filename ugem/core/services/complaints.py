"""Feedback-loop complaints: received, traced to their connection, kept, counted, announced.

One logic for the relay (mail to `[reputation] fbl_address`, handed over at
the end of DATA), `GET /v1/reputation/complaints` and `ugem reputation
complaints`. `ComplaintService.receive(text, client_ip, sender)` reads the
report (`ugem.core.feedback.parse_report`, in a worker thread: CPU work on a
stranger's bytes), traces it (`attribute`), keeps it in the store, counts it
in `ugem_complaints_total{connection,feedback_type}` (connection "none" when
it is not traced), publishes a `ugem.core.events.Complained` event (the
connection, the time, the feedback type: evidence the anomaly detector may
weigh) and logs `complaint_received` at INFO. A report that cannot be read
is kept all the same, untraced, with the reason (`problem`).

Attribution (`attribute`), the first that names a live connection of the
registry wins, and the complaint records which (`attributed_by`) and on what
(`evidence`):
1. `queue_id`: the topmost `Received:` field of the original written by a
   UGEM gateway (`by <host> (UGEM) with ... id <queue id>`,
   `relay.accept.received`); it is above anything the sender wrote, and names
   the client's address (`from <helo> ([address])`), which is a connection's
   server (`by_address`). The queue id is kept either way (`ugem log search`);
2. `dkim`: the `d=`, then the domain of `i=`, of each DKIM-Signature of the
   original (the relay signs mail of connected servers with their domain's
   key), a connection's domain (`by_domain`, exact);
3. `sender_domain`: the domain of the report's Original-Mail-From, else the
   original's Return-Path, else its From, else the report's Reported-Domain.
None of these is verified (a report is a stranger's word: the feedback
address should be given only to the feedback loops of the large mailbox
providers); the evidence lets an operator judge.

Bounded: the store keeps the newest `cap` complaints (`MAX_COMPLAINTS` by
default: a journal, `ugem.core.store.base`), an older one is dropped and
counted (`Tally.dropped`); a complaint keeps at most `MAX_KEPT_FIELDS` and
`MAX_KEPT_HEADERS` characters of the report's fields and the original's
header fields, `MAX_VALUES` values of a repeated field (so at most about
15 KiB each, 150 MiB for a full journal at worst, a few KiB each in practice).

Errors: a failure of the store is `StoreError` (the relay answers 451, the
sender tries again); a stored complaint that cannot be read is `StoreError`;
a `limit` below 1 is `UsageError`.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from email.utils import parseaddr
from enum import StrEnum
from typing import Any, Protocol

from ugem.core.clock import Clock
from ugem.core.errors import StoreError, UsageError
from ugem.core.events import Complained, EventBus
from ugem.core.feedback import FeedbackReport, Fields, ReportFormat, parse_report
from ugem.core.log import event
from ugem.core.metrics import Metrics
from ugem.core.model import Connection
from ugem.core.paging import DEFAULT_LIMIT, Page, page_of
from ugem.core.store.base import Store

log = logging.getLogger(__name__)

KIND = "complaint"  # the store's journal
MAX_COMPLAINTS = 10_000  # complaints kept; an older one is dropped
MAX_KEPT_FIELDS = 4 * 1024  # characters of the report's fields kept
MAX_KEPT_HEADERS = 8 * 1024  # characters of the original's header fields kept
MAX_VALUES = 20  # values kept of a repeated field (Original-Rcpt-To, Reported-Domain)
MAX_SIGNATURES = 10  # DKIM-Signature fields looked at
PAGE = 500  # complaints read from the store at once when listing
ALL = 2**62  # a limit no journal reaches
SINCE_SLACK = 300.0  # seconds: listing stops past `since` by this much (clocks of nodes differ)

# Our Received: field (relay.accept.received), unfolded: the client's address and our queue id.
_OURS = re.compile(
    r"^from\s+\S+\s+\(\[(?:IPv6:)?(?P<ip>[0-9A-Fa-f.:]+)\]\)"
    r".*?\bby\s+(?P<host>\S+)\s+\(UGEM\)\s+with\s+\w+\s+id\s+(?P<id>[0-9B-DF-HJ-NP-TV-Z]{19})\b",
    re.IGNORECASE,
)
_DKIM_TAG = re.compile(r"(?:^|;)\s*([di])\s*=\s*([^;]*)", re.IGNORECASE)


class Attribution(StrEnum):
    QUEUE_ID = "queue_id"  # our Received: field: the client's address
    DKIM = "dkim"  # a DKIM-Signature's d= or i=
    SENDER_DOMAIN = "sender_domain"  # the original's sender's domain
    NONE = "none"  # not traced


class Connections(Protocol):
    """What tracing asks of the registry (`ugem.core.registry.Registry`)."""

    def by_address(self, ip: str) -> Connection | None: ...

    def by_domain(self, domain: str) -> Connection | None: ...


@dataclass(frozen=True)
class Trace:
    connection: str  # "" when not traced
    by: Attribution
    evidence: str  # what named it, or why nothing did
    queue_id: str = ""  # the gateway's queue id of the original, when its Received: has one


@dataclass(frozen=True)
class Complaint:
    id: int  # the store's number, 1, 2, 3, ...
    received_at: float
    client_ip: str  # who sent the report
    sender: str  # its envelope sender ("" for <>)
    size: int  # bytes of the report
    format: ReportFormat
    feedback_type: str
    reporter: str  # the report's From:
    user_agent: str
    connection: str  # "" when not traced
    attributed_by: Attribution
    evidence: str
    queue_id: str
    message_id: str  # the original's Message-ID
    original_mail_from: str
    original_rcpt_to: tuple[str, ...]
    arrival_date: str
    source_ip: str
    reported_domains: tuple[str, ...]
    fields: Fields  # the report's machine-readable fields, cut to MAX_KEPT_FIELDS
    original_headers: Fields  # the original's header fields, cut to MAX_KEPT_HEADERS
    problem: str  # what could not be read, "" when all was
    truncated: bool

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("original_rcpt_to", "reported_domains"):
            data[key] = list(data[key])
        for key in ("fields", "original_headers"):
            data[key] = [list(pair) for pair in data[key]]
        return data | {"format": self.format.value, "attributed_by": self.attributed_by.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Complaint:
        """Raises KeyError, TypeError or ValueError on data `to_dict` did not make."""
        text = {k: str(data[k]) for k in _TEXTS}
        return cls(
            id=int(data["id"]),
            received_at=float(data["received_at"]),
            size=int(data["size"]),
            format=ReportFormat(data["format"]),
            attributed_by=Attribution(data["attributed_by"]),
            original_rcpt_to=_texts(data["original_rcpt_to"]),
            reported_domains=_texts(data["reported_domains"]),
            fields=_pairs(data["fields"]),
            original_headers=_pairs(data["original_headers"]),
            truncated=bool(data["truncated"]),
            **text,
        )


_TEXTS = (
    "client_ip", "sender", "feedback_type", "reporter", "user_agent", "connection", "evidence",
    "queue_id", "message_id", "original_mail_from", "arrival_date", "source_ip", "problem",
)  # fmt: skip


def _texts(values: list[Any]) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


def _pairs(values: list[Any]) -> Fields:
    return tuple((str(name), str(value)) for name, value in values)


@dataclass(frozen=True)
class Tally:
    """How many complaints came (numbered), are kept, were dropped, and the cap."""

    received: int
    kept: int
    dropped: int
    cap: int


class ComplaintService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        connections: Connections | None = None,
        bus: EventBus | None = None,
        metrics: Metrics | None = None,
        cap: int = MAX_COMPLAINTS,
    ) -> None:
        """`connections` traces (None: nothing is traced, as in a command that only lists);
        `bus` and `metrics` are told of each complaint (None: not)."""
        self.store = store
        self.clock = clock
        self.connections = connections
        self.bus = bus
        self.metrics = metrics
        self.cap = cap

    async def receive(self, text: bytes, client_ip: str, sender: str) -> Complaint:
        """Read, trace, keep, count and announce one report; StoreError if it is not kept."""
        report = await asyncio.to_thread(parse_report, text)
        trace = attribute(report, self.connections)
        draft = complaint_of(report, trace, self.clock.now(), client_ip, sender, len(text))
        data = json.dumps(draft.to_dict(), ensure_ascii=False, sort_keys=True)
        number, dropped = await self.store.journal_append(KIND, data, self.cap)
        complaint = replace(draft, id=number)
        self._announce(complaint, dropped)
        return complaint

    def _announce(self, complaint: Complaint, dropped: int) -> None:
        if self.metrics is not None:
            self.metrics.complaint(complaint.connection, complaint.feedback_type)
        if self.bus is not None:
            self.bus.publish(
                Complained(
                    complaint.received_at,
                    complaint.connection,
                    complaint.id,
                    complaint.feedback_type,
                    complaint.attributed_by.value,
                )
            )
        event(
            log,
            "complaint_received",
            id=complaint.id,
            connection=complaint.connection,
            attributed_by=complaint.attributed_by.value,
            feedback_type=complaint.feedback_type,
            format=complaint.format.value,
            client_ip=complaint.client_ip,
            queue_id=complaint.queue_id,
            problem=complaint.problem,
            dropped=dropped,
        )

    async def list(
        self, connection: str | None = None, since: float | None = None, limit: int = 100
    ) -> builtins.list[Complaint]:
        """Complaints newest first, of `connection` ("" the untraced ones) and received at or
        after `since` if given, at most `limit`."""
        if limit < 1:
            raise UsageError(f"limit: {limit} is not valid; expected 1 or more")
        found: builtins.list[Complaint] = []
        before: int | None = None
        while len(found) < limit:
            page = await self.store.journal_list(KIND, PAGE, before)
            if not page:
                break
            for number, data in page:
                complaint = _decode(number, data)
                if since is not None and complaint.received_at < since - SINCE_SLACK:
                    return found  # the rest is older still
                if _matches(complaint, connection, since):
                    found.append(complaint)
                    if len(found) == limit:
                        break
            before = page[-1][0]
        return found

    async def page(
        self,
        connection: str | None = None,
        since: float | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[Complaint]:
        """A page of `list` (newest first; keyset on the number: `ugem.core.paging`) and
        the total: every kept complaint is read (the journal is capped)."""
        found = await self.list(connection, since, ALL)
        return page_of(found, lambda c: c.id, limit, cursor, "complaints", descending=True)

    async def tally(self) -> Tally:
        last, kept = await self.store.journal_size(KIND)
        return Tally(last, kept, max(0, last - kept), self.cap)


def _matches(complaint: Complaint, connection: str | None, since: float | None) -> bool:
    if connection is not None and complaint.connection != connection:
        return False
    return since is None or complaint.received_at >= since


def _decode(number: int, data: str) -> Complaint:
    try:
        return Complaint.from_dict(json.loads(data) | {"id": number})
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"stored complaint {number} is damaged: {exc}") from exc


def complaint_of(
    report: FeedbackReport, trace: Trace, now: float, client_ip: str, sender: str, size: int
) -> Complaint:
    """The complaint `report` is, traced by `trace`, not yet numbered (id 0)."""
    return Complaint(
        id=0,
        received_at=now,
        client_ip=client_ip,
        sender=sender,
        size=size,
        format=report.format,
        feedback_type=report.feedback_type,
        reporter=report.reporter,
        user_agent=report.value("User-Agent"),
        connection=trace.connection,
        attributed_by=trace.by,
        evidence=trace.evidence,
        queue_id=trace.queue_id,
        message_id=report.header("Message-ID"),
        original_mail_from=report.value("Original-Mail-From"),
        original_rcpt_to=report.values("Original-Rcpt-To")[:MAX_VALUES],
        arrival_date=report.value("Arrival-Date") or report.value("Received-Date"),
        source_ip=report.value("Source-IP"),
        reported_domains=report.values("Reported-Domain")[:MAX_VALUES],
        fields=_cut(report.fields, MAX_KEPT_FIELDS),
        original_headers=_cut(report.original, MAX_KEPT_HEADERS),
        problem=report.problem,
        truncated=report.truncated,
    )


def _cut(fields: Fields, most: int) -> Fields:
    """The leading fields whose names and values come to at most `most` characters."""
    kept, total = [], 0
    for name, value in fields:
        total += len(name) + len(value)
        if total > most:
            break
        kept.append((name, value))
    return tuple(kept)


# -- attribution -----------------------------------------------------------------------------


def attribute(report: FeedbackReport, connections: Connections | None) -> Trace:
    """Which connection `report` is about, how that was found, and on what."""
    ours = our_received(report.headers("Received"))
    queue_id = ours[1] if ours is not None else ""
    if connections is None:
        return Trace("", Attribution.NONE, "nothing traced here", queue_id)
    steps: Sequence[Callable[[], Trace | None]] = (
        lambda: _by_queue_id(ours, connections),
        lambda: _by_dkim(report, connections),
        lambda: _by_sender(report, connections),
    )
    for step in steps:
        trace = step()
        if trace is not None:
            return replace(trace, queue_id=queue_id)
    return Trace("", Attribution.NONE, _untraced(report, ours), queue_id)


def our_received(fields: Sequence[str]) -> tuple[str, str] | None:
    """(client address, queue id) of the topmost Received: a UGEM gateway wrote, or None."""
    for value in fields:
        found = _OURS.search(value)
        if found is not None:
            return found["ip"], found["id"]
    return None


def _by_queue_id(ours: tuple[str, str] | None, connections: Connections) -> Trace | None:
    if ours is None:
        return None
    ip, queue_id = ours
    conn = connections.by_address(ip)
    if conn is None:
        return None
    return Trace(conn.id, Attribution.QUEUE_ID, f"queue id {queue_id} from {ip}")


def _by_dkim(report: FeedbackReport, connections: Connections) -> Trace | None:
    for signature in report.headers("DKIM-Signature")[:MAX_SIGNATURES]:
        tags = dict((t.lower(), re.sub(r"\s+", "", v)) for t, v in _DKIM_TAG.findall(signature))
        for tag in ("d", "i"):
            domain = tags.get(tag, "").rpartition("@")[2].lower()
            conn = _owner(domain, connections)
            if conn is not None:
                return Trace(conn.id, Attribution.DKIM, f"DKIM-Signature {tag}={tags[tag]}")
    return None


def _by_sender(report: FeedbackReport, connections: Connections) -> Trace | None:
    candidates = [
        ("Original-Mail-From", report.value("Original-Mail-From")),
        ("Return-Path", report.header("Return-Path")),
        ("From", report.header("From")),
    ]
    for name, value in candidates:
        conn = _owner(_domain_of(value), connections)
        if conn is not None:
            return Trace(conn.id, Attribution.SENDER_DOMAIN, f"{name}: {value}")
    for domain in report.values("Reported-Domain")[:MAX_VALUES]:
        conn = _owner(domain.strip().lower(), connections)
        if conn is not None:
            return Trace(conn.id, Attribution.SENDER_DOMAIN, f"Reported-Domain: {domain}")
    return None


def _domain_of(value: str) -> str:
    address = parseaddr(value)[1] if value else ""
    return address.rpartition("@")[2].strip().rstrip(".").lower() if "@" in address else ""


def _owner(domain: str, connections: Connections) -> Connection | None:
    domain = domain.rstrip(".")
    return connections.by_domain(domain) if domain else None


def _untraced(report: FeedbackReport, ours: tuple[str, str] | None) -> str:
    if report.problem and not report.original:
        return report.problem
    if ours is not None:
        return f"queue id {ours[1]} from {ours[0]}, which is no connection's server"
    return "no Received: of this gateway, DKIM-Signature or sender names a connection"
