"""Applications to connect (paragraphs 7-10 of the Rules): receipt, checks, decision.

An application carries what the Rules' form asks for (domain, its owner, the
mail server addresses, the organisation's name and kind, its technical
specialists' contacts, the notices' language, the number and date of
receipt, and whether it came through the APS or by letter). On receipt its
`decision_due` is five working days after the date of receipt (Asia/Almaty,
`ugem.core.workdays`). `check` runs the checks it can (the organisation is one of
the five kinds the Rules name; the servers are routable and no other
connection's; the domain is nobody's; and, with a `DnsCheck` provider, the
domain's DNS readiness: mx, spf, dkim, dmarc) and records the operator's
findings, which override a check of the same name. `decide`
connects (the connection is created; every check must have passed) or
rejects (with at least one reason). A rejected domain may apply again only
after thirty calendar days: the period starts the day after the rejection and
an application is accepted from the day after it ends (rejected on 1 March:
accepted from 1 April); an earlier one is a `ConflictError` naming that date.
A decision is mailed to the applicant's contacts (`Notifier`, when there is
one): the measures taken on a connection, or the rejection with its reasons
and the date a new application is accepted; a notice that cannot be queued is
logged and audited and the decision stands.
Errors: `UsageError` naming the field, `NotFoundError`, `ConflictError` with
what to do. Every change is audited; the number of overdue applications is
kept in a gauge that is right at every scrape.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import ipaddress
import json
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from ugem.core.clock import Clock
from ugem.core.errors import ConflictError, NotFoundError, StoreError, UsageError
from ugem.core.model import Connection, Contact, Language, OrgKind
from ugem.core.names import canonical_domain, canonical_network
from ugem.core.notices import NoticeKind
from ugem.core.paging import DEFAULT_LIMIT, Page, page_of
from ugem.core.services.audit import AuditLog
from ugem.core.services.connections import ConnectionService, server_owner
from ugem.core.services.notices import Addressee, Notifier
from ugem.core.store.base import Store
from ugem.core.workdays import WorkCalendar, local_date

KIND = "application"
DECISION_DAYS = 5  # working days (paragraphs 8-10)
RESUBMIT_DAYS = 30  # calendar days after a rejection (paragraph 10)
OTHER = "other"  # an applicant of none of the five kinds (not eligible)
Gauge = Any  # prometheus_client.Gauge (set_function)


class AppState(StrEnum):
    PENDING = "pending"
    CONNECTED = "connected"
    REJECTED = "rejected"


class Channel(StrEnum):
    APS = "aps"
    LETTER = "letter"


class Decision(StrEnum):
    CONNECT = "connect"
    REJECT = "reject"


@dataclass(frozen=True)
class Finding:
    name: str  # "eligible", "routable", "servers-free", "domain-free", the DnsCheck's, or
    ok: bool  # the operator's
    note: str = ""
    by: str = "auto"  # "auto", or the actor who recorded it


# domain -> its DNS readiness findings (mx, spf, dkim, dmarc); a failed lookup is a failed
# finding, not an exception. Built by the wiring (ugem.adapters.readiness.application_check).
DnsCheck = Callable[[str], Awaitable[list[Finding]]]


@dataclass(frozen=True)
class ApplicationForm:
    """What the applicant's form and the receipt give (input to `receive`)."""

    number: str
    domain: str
    domain_owner: str
    servers: Sequence[str]
    org_name: str
    kind: str  # an OrgKind value, or "other"
    contacts: Sequence[Contact]
    language: Language = Language.RU
    channel: Channel = Channel.APS
    received_at: float | None = None  # default: now


@dataclass(frozen=True)
class Application:
    id: str
    number: str
    domain: str
    domain_owner: str
    servers: tuple[str, ...]
    org_name: str
    kind: str
    contacts: tuple[Contact, ...]
    language: Language
    channel: Channel
    received_at: float
    decision_due: str  # ISO date, Asia/Almaty
    recorded_by: str
    state: AppState = AppState.PENDING
    checks: tuple[Finding, ...] = ()
    decided_at: float = 0.0
    decided_by: str = ""
    reasons: tuple[str, ...] = ()

    def overdue(self, today: dt.date) -> bool:
        return self.state == AppState.PENDING and today > dt.date.fromisoformat(self.decision_due)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Application:
        data = dict(data)
        data["servers"] = tuple(data["servers"])
        data["contacts"] = tuple(Contact(**c) for c in data["contacts"])
        data["checks"] = tuple(Finding(**f) for f in data["checks"])
        data["reasons"] = tuple(data["reasons"])
        data["language"] = Language(data["language"])
        data["channel"] = Channel(data["channel"])
        data["state"] = AppState(data["state"])
        return cls(**data)


def first_resubmission(rejected_at: float) -> dt.date:
    """The first date a rejected domain may apply again."""
    return local_date(rejected_at) + dt.timedelta(days=RESUBMIT_DAYS + 1)


class ApplicationService:
    def __init__(
        self,
        store: Store,
        connections: ConnectionService,
        audit: AuditLog,
        clock: Clock,
        calendar: WorkCalendar | None = None,
        dns_check: DnsCheck | None = None,
        overdue_gauge: Gauge | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.connections = connections
        self.audit = audit
        self.clock = clock
        self.calendar = calendar or WorkCalendar()
        self.dns_check = dns_check
        self._pending_due: dict[str, dt.date] = {}
        if overdue_gauge is not None:
            overdue_gauge.set_function(self.overdue_count)

    # -- reads ----------------------------------------------------------------------------

    async def all(self) -> builtins.list[Application]:
        found = [_decode(data, ident) for ident, data in await self.store.doc_list(KIND)]
        self._pending_due = {
            a.id: dt.date.fromisoformat(a.decision_due)
            for a in found
            if a.state == AppState.PENDING
        }
        return found

    async def list(
        self, state: AppState | None = None, overdue: bool | None = None, domain: str | None = None
    ) -> builtins.list[Application]:
        today = self.today()
        return [
            a
            for a in await self.all()
            if (state is None or a.state == state)
            and (overdue is None or a.overdue(today) == overdue)
            and (domain is None or a.domain == domain)
        ]

    async def page(
        self,
        state: AppState | None = None,
        overdue: bool | None = None,
        domain: str | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[Application]:
        """A page of `list`, by id (keyset: `ugem.core.paging`), and the total."""
        found = sorted(await self.list(state, overdue, domain), key=lambda a: a.id)
        return page_of(found, lambda a: a.id, limit, cursor, "applications")

    async def get(self, app_id: str) -> Application:
        data = await self.store.doc_get(KIND, app_id)
        if data is None:
            raise NotFoundError(f"no application {app_id!r}")
        return _decode(data, app_id)

    def today(self) -> dt.date:
        return local_date(self.clock.now())

    def overdue_count(self) -> float:
        today = self.today()
        return float(sum(1 for due in self._pending_due.values() if today > due))

    # -- receipt --------------------------------------------------------------------------

    async def receive(self, form: ApplicationForm, actor: str) -> Application:
        """Record an application; ConflictError if the domain may not apply now."""
        received = self.clock.now() if form.received_at is None else form.received_at
        app = _validated(form, received, actor, self.calendar)
        await self._may_apply(app)
        await self.store.doc_add(KIND, app.id, _encode(app))
        await self.audit.record(actor, "application.receive", app.id, after=app.to_dict())
        await self.all()
        return app

    async def _may_apply(self, app: Application) -> None:
        conn = await self.store.get(app.domain)
        if conn is not None:
            raise ConflictError(f"domain {app.domain} is connection {conn.id!r} ({conn.state})")
        mine = [a for a in await self.all() if a.domain == app.domain]
        for other in mine:
            if other.state == AppState.PENDING:
                raise ConflictError(
                    f"application {other.id} (No. {other.number}) for {app.domain} is pending; "
                    "decide it first"
                )
        rejected = [a.decided_at for a in mine if a.state == AppState.REJECTED]
        if rejected:
            first = first_resubmission(max(rejected))
            if local_date(app.received_at) < first:
                raise ConflictError(
                    f"domain {app.domain} was rejected on {local_date(max(rejected))}; "
                    f"a new application is accepted from {first} (paragraph 10: thirty "
                    "calendar days after the rejection)"
                )

    # -- checks ---------------------------------------------------------------------------

    async def check(self, app_id: str, findings: Sequence[Finding], actor: str) -> Application:
        app = _pending(await self.get(app_id), "check")
        auto = await self._automatic(app)
        mine = [dataclasses.replace(f, by=actor) for f in findings]
        names = {f.name for f in mine}
        checked = dataclasses.replace(
            app, checks=tuple(f for f in auto if f.name not in names) + tuple(mine)
        )
        await self._save(checked)
        await self.audit.record(
            actor,
            "application.check",
            app.id,
            details={"checks": [asdict(f) for f in checked.checks]},
        )
        return checked

    async def _automatic(self, app: Application) -> builtins.list[Finding]:
        conns = await self.store.list()
        clash = server_owner(conns, app.servers, app.domain)
        owner = next((c.id for c in conns if app.domain in c.domains), None)
        found = [
            Finding("eligible", app.kind != OTHER, f"kind: {app.kind}"),
            _routable(app.servers),
            Finding("servers-free", clash is None, clash or "no other connection has them"),
            Finding(
                "domain-free",
                owner is None,
                f"belongs to connection {owner!r}" if owner else "no connection has it",
            ),
        ]
        if self.dns_check is not None:
            found += await _dns(self.dns_check, app.domain)
        return found

    # -- decision -------------------------------------------------------------------------

    async def decide(
        self, app_id: str, decision: Decision, reasons: Sequence[str], actor: str
    ) -> tuple[Application, Connection | None]:
        self.connections.store_needed()  # 503 at once while the node's store is down
        app = _pending(await self.get(app_id), "decide")
        reasons = tuple(r.strip() for r in reasons if r.strip())
        if decision == Decision.REJECT:
            if not reasons:
                raise UsageError("reasons: empty; a rejection states at least one reason")
            done = await self._finish(app, AppState.REJECTED, reasons, actor)
            await self._notify(done, NoticeKind.REJECTED, actor)
            return done, None
        failed = [f.name for f in app.checks if not f.ok]
        if not app.checks or failed:
            what = ", ".join(failed) if failed else "none were run"
            raise ConflictError(
                f"application {app.id} cannot be connected: checks failed: {what}; run "
                "POST /v1/applications/{id}/checks (with the operator's findings) or reject it"
            )
        conn = await self.connections.add(_connection(app, self.clock.now()), actor, app.id)
        done = await self._finish(app, AppState.CONNECTED, reasons, actor)
        await self._notify(done, NoticeKind.CONNECTED, actor)
        return done, conn

    async def _notify(self, app: Application, kind: NoticeKind, actor: str) -> None:
        if self.notifier is None:
            return
        to = Addressee(
            app.id, app.org_name, app.language, app.contacts, app.domain, (app.domain,), app.servers
        )
        extra = {
            "application_number": app.number,
            "application_date": local_date(app.received_at).isoformat(),
        }
        if kind == NoticeKind.REJECTED:
            extra["reasons"] = "\n".join(f"  - {r}" for r in app.reasons)
            extra["resubmit_from"] = first_resubmission(app.decided_at).isoformat()
        await self.notifier.send(kind, to, actor, "; ".join(app.reasons), **extra)

    async def _finish(
        self, app: Application, state: AppState, reasons: tuple[str, ...], actor: str
    ) -> Application:
        done = dataclasses.replace(
            app, state=state, decided_at=self.clock.now(), decided_by=actor, reasons=reasons
        )
        await self._save(done)
        verb = "connect" if state == AppState.CONNECTED else "reject"
        await self.audit.record(
            actor, f"application.{verb}", app.id, "; ".join(reasons),
            before={"state": app.state.value}, after={"state": state.value},
        )  # fmt: skip
        await self.all()
        return done

    async def _save(self, app: Application) -> None:
        await self.store.doc_put(KIND, app.id, _encode(app))


def _validated(
    form: ApplicationForm, received: float, actor: str, calendar: WorkCalendar
) -> Application:
    kinds = [k.value for k in OrgKind]
    if form.kind not in (*kinds, OTHER):
        raise UsageError(f"kind: {form.kind!r} is not one of {', '.join(kinds)}, {OTHER}")
    for name in ("number", "domain_owner", "org_name"):
        if not str(getattr(form, name)).strip():
            raise UsageError(f"{name}: empty")
    if not form.servers:
        raise UsageError("servers: empty; the form names the mail server's IP address")
    if not form.contacts:
        raise UsageError("contacts: empty; the form names the technical specialists")
    day = local_date(received)
    return Application(
        id=f"{day:%Y%m%d}-{secrets.token_hex(3)}",
        number=form.number.strip(),
        domain=_domain(form.domain),
        domain_owner=form.domain_owner.strip(),
        servers=tuple(_server(s) for s in form.servers),
        org_name=form.org_name.strip(),
        kind=form.kind,
        contacts=tuple(form.contacts),
        language=form.language,
        channel=form.channel,
        received_at=received,
        decision_due=calendar.add_working_days(day, DECISION_DAYS).isoformat(),
        recorded_by=actor,
    )


def _domain(value: str) -> str:
    try:
        return canonical_domain(value)
    except ValueError as exc:
        raise UsageError(f"domain: {exc}; expected a domain like example.gov.kz") from None


def _server(value: str) -> str:
    try:
        return str(canonical_network(value))
    except ValueError as exc:
        raise UsageError(f"servers: {exc}; expected IP addresses or CIDR networks") from None


async def _dns(check: DnsCheck, domain: str) -> builtins.list[Finding]:
    try:
        return [dataclasses.replace(f, by="auto") for f in await check(domain)]
    except Exception as exc:  # the provider promises findings; a fault in it is one as well
        return [Finding("dns", False, f"DNS readiness check failed: {exc}")]


def _routable(servers: Sequence[str]) -> Finding:
    bad = [s for s in servers if not ipaddress.ip_network(s).is_global]
    note = "not global: " + ", ".join(bad) if bad else "all global"
    return Finding("routable", not bad, note)


def _pending(app: Application, verb: str) -> Application:
    if app.state != AppState.PENDING:
        raise ConflictError(
            f"cannot {verb} application {app.id}: it was {app.state} on "
            f"{local_date(app.decided_at)}; a new application starts again"
        )
    return app


def _connection(app: Application, now: float) -> Connection:
    return Connection(
        id=app.domain,
        org_name=app.org_name,
        kind=OrgKind(app.kind),
        domains=(app.domain,),
        servers=app.servers,
        contacts=app.contacts,
        language=app.language,
        created_at=now,
        state_changed_at=now,
        extra={
            "application": app.id,
            "application_number": app.number,
            "domain_owner": app.domain_owner,
        },
    )


def _encode(app: Application) -> str:
    return json.dumps(app.to_dict(), ensure_ascii=False, sort_keys=True)


def _decode(data: str, app_id: str) -> Application:
    try:
        return Application.from_dict(json.loads(data))
    except (ValueError, TypeError, KeyError) as exc:
        raise StoreError(
            f"application {app_id!r}: the stored application is damaged: {exc}"
        ) from exc
