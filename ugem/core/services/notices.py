"""Mailing the notices of decisions to organisations, through the relay's own queue.

`Notifier.send` renders a notice (`ugem.core.notices`) to an organisation's
contacts in its language with English below, and hands it to an `Outbox`:
a small protocol the node wiring satisfies with the relay's scheduler
(`ugem.adapters.outbox.SchedulerOutbox`), so the notice is durable in the spool and
delivered, retried and bounced like any other mail, and `ugem` does not
import the relay. On a suspension `alert_suspended` also tells the
operators' address, when one is configured; `alert_would_suspend` tells it
what the anomaly detector would have suspended (shadow mode, an exemption),
with the incident and its evidence, and never writes to the organisation;
`alert_gateway` tells it of an incident of the gateway itself (a listing of
one of its addresses, a burst of blocklisted replies: `GatewayAlert`), with
the connections it names, and writes to no organisation either.

A notice never undoes the decision it reports: `send` raises nothing. When it
cannot be queued (no contact address, a broken template, a full spool), it
logs the reason at ERROR and writes `notice.failed` to the audit log with the
decision's actor and target, and returns None; a notice queued is logged at
INFO with its queue id.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ugem.core.clock import Clock
from ugem.core.config import Config
from ugem.core.errors import UgemError, UsageError
from ugem.core.log import event
from ugem.core.model import Connection, Contact, Language
from ugem.core.notices import NoticeKind, Templates, compose, languages, notice_text
from ugem.core.services.audit import AuditLog
from ugem.core.workdays import ALMATY

log = logging.getLogger(__name__)

NOT_GIVEN = "-"  # a reason left empty


@dataclass(frozen=True)
class OutgoingMail:
    """A message for the relay's queue: envelope and text (CRLF), from the gateway itself."""

    sender: str
    rcpts: tuple[str, ...]
    data: bytes


class Outbox(Protocol):
    async def send(self, mail: OutgoingMail) -> str:
        """Queue `mail` durably for delivery; its queue id. Raises if it cannot."""
        ...


@dataclass(frozen=True)
class Addressee:
    """Who a notice is about and for: the organisation, its contacts and language."""

    target: str  # the audit target: a connection or an application id
    org_name: str
    language: Language
    contacts: tuple[Contact, ...]
    domain: str
    domains: tuple[str, ...]
    servers: tuple[str, ...]

    @classmethod
    def of(cls, conn: Connection) -> Addressee:
        return cls(
            conn.id,
            conn.org_name,
            conn.language,
            conn.contacts,
            conn.id,
            conn.domains,
            conn.servers,
        )


@dataclass(frozen=True)
class NoticeSettings:
    postmaster: str  # From: and the envelope sender
    hostname: str  # the gateway's name (Message-ID, and the text's "$gateway")
    operators: str = ""  # where alerts go ("" for none)
    templates: Templates = field(default_factory=Templates)


@dataclass(frozen=True)
class GatewayAlert:
    """An operators' alert about the gateway itself (ugem.core.services.gateway)."""

    target: str  # the audit target: the incident's subject
    event: str  # what happened, in a few words (the Subject)
    incident: str  # its number ("-": none)
    reason: str
    addresses: tuple[str, ...]  # the gateway's addresses concerned
    blocklists: tuple[str, ...]  # the lists named
    window: str  # how far back the suspects were looked for ("6 h")
    suspects: tuple[str, ...]  # one line each, most suspect first
    evidence: tuple[str, ...]  # the numbers, one a line


def local_time(ts: float) -> str:
    """Unix time as 'YYYY-MM-DD HH:MM' in Asia/Almaty."""
    return dt.datetime.fromtimestamp(ts, ALMATY).strftime("%Y-%m-%d %H:%M")


class Notifier:
    def __init__(
        self, outbox: Outbox | None, audit: AuditLog, clock: Clock, settings: NoticeSettings
    ) -> None:
        self.outbox = outbox
        self.audit = audit
        self.clock = clock
        self.settings = settings

    async def send(
        self, kind: NoticeKind, to: Addressee, actor: str, reason: str = "", **extra: str
    ) -> str | None:
        """Queue the notice to `to`'s contacts; its queue id, or None if it failed."""
        values = self._values(to, reason, extra)
        return await self._mail(kind, to.language, to.contacts, to.target, actor, values)

    async def alert_suspended(self, to: Addressee, actor: str, reason: str) -> str | None:
        """Tell the operators' address that `to` was suspended (when one is configured)."""
        if not self.settings.operators:
            return None
        contacts = ", ".join(c.email for c in to.contacts) or "none"
        values = self._values(to, reason, {"actor": actor, "contacts": contacts})
        rcpts = [self.settings.operators]
        kind = NoticeKind.ALERT_SUSPENDED
        return await self._mail(kind, Language.EN, rcpts, to.target, actor, values)

    async def alert_would_suspend(
        self,
        to: Addressee,
        actor: str,
        reason: str,
        incident: str,
        not_suspended: str,
        evidence: Sequence[str],
    ) -> str | None:
        """Tell the operators' address (when configured) that `to` would have been
        suspended, and why not (`not_suspended`); the owner is not told."""
        extra = {"actor": actor, "incident": incident, "not_suspended": not_suspended}
        return await self._alert_with_evidence(
            NoticeKind.ALERT_WOULD_SUSPEND, to, actor, reason, extra, evidence
        )

    async def alert_throttled(
        self,
        to: Addressee,
        actor: str,
        reason: str,
        incident: str,
        cap: int,
        evidence: Sequence[str],
    ) -> str | None:
        """Tell the operators' address (when configured) that `to` was throttled to `cap`
        recipients per 5 minutes; the owner is not told (nothing of theirs is refused for
        good: the excess is deferred)."""
        extra = {"actor": actor, "incident": incident, "cap": str(cap)}
        return await self._alert_with_evidence(
            NoticeKind.ALERT_THROTTLED, to, actor, reason, extra, evidence
        )

    async def alert_gateway(self, alert: GatewayAlert, actor: str) -> str | None:
        """Tell the operators' address (when configured) of an incident of the gateway."""
        if not self.settings.operators:
            return None
        ranked = [f"  {n}. {line}" for n, line in enumerate(alert.suspects, start=1)]
        values = {
            "date": local_time(self.clock.now()),
            "postmaster": self.settings.postmaster,
            "gateway": self.settings.hostname,
            "actor": actor,
            "incident": alert.incident,
            "event": alert.event,
            "reason": alert.reason.strip() or NOT_GIVEN,
            "addresses": ", ".join(alert.addresses) or "no public address configured",
            "blocklists": ", ".join(alert.blocklists) or "none named",
            "window": alert.window,
            "suspects": "\n".join(ranked) or "  none: no connection's mail left in that time",
            "evidence": "\n".join(f"  {line}" for line in alert.evidence) or "  -",
        }
        rcpts = [self.settings.operators]
        kind = NoticeKind.ALERT_GATEWAY
        return await self._mail(kind, Language.EN, rcpts, alert.target, actor, values)

    async def _alert_with_evidence(
        self,
        kind: NoticeKind,
        to: Addressee,
        actor: str,
        reason: str,
        extra: dict[str, str],
        evidence: Sequence[str],
    ) -> str | None:
        """An operators' alert of `kind` listing an incident's evidence, in English."""
        if not self.settings.operators:
            return None
        lines = "\n".join(f"  {line}" for line in evidence) or "  -"
        values = self._values(to, reason, extra | {"evidence": lines})
        rcpts = [self.settings.operators]
        return await self._mail(kind, Language.EN, rcpts, to.target, actor, values)

    async def _mail(
        self,
        kind: NoticeKind,
        language: Language,
        rcpts: Sequence[Contact | str],
        target: str,
        actor: str,
        values: Mapping[str, str],
    ) -> str | None:
        try:
            queue_id = await self._queue(kind, language, rcpts, values)
        except Exception as exc:  # a notice must not undo the decision it reports
            await self._failed(kind, target, actor, exc)
            return None
        event(log, "notice_queued", queue_id=queue_id, kind=kind.value, target=target)
        return queue_id

    async def _queue(
        self,
        kind: NoticeKind,
        language: Language,
        rcpts: Sequence[Contact | str],
        values: Mapping[str, str],
    ) -> str:
        if not rcpts:
            raise UsageError("contacts: none; no e-mail address to send the notice to")
        if self.outbox is None:
            raise UgemError("no outbox: notices are queued only by a running node")
        s = self.settings
        text = notice_text(s.templates, kind, language, values)
        data = compose(
            s.postmaster, rcpts, text, languages(kind, language), self.clock.now(), s.hostname
        )
        addrs = tuple(dict.fromkeys(r if isinstance(r, str) else r.email for r in rcpts))
        return await self.outbox.send(OutgoingMail(s.postmaster, addrs, data))

    async def _failed(self, kind: NoticeKind, target: str, actor: str, exc: Exception) -> None:
        error = str(exc) or type(exc).__name__
        event(log, "notice_failed", logging.ERROR, kind=kind.value, target=target, error=error)
        try:
            await self.audit.record(
                actor, "notice.failed", target, error, details={"notice": kind.value}
            )
        except Exception:
            event(log, "notice_failure_not_audited", logging.ERROR, target=target, exc_info=True)

    def _values(self, to: Addressee, reason: str, extra: Mapping[str, str]) -> dict[str, str]:
        return {
            "org_name": to.org_name,
            "domain": to.domain,
            "domains": ", ".join(to.domains),
            "servers": ", ".join(to.servers),
            "date": local_time(self.clock.now()),
            "reason": reason.strip() or NOT_GIVEN,
            "postmaster": self.settings.postmaster,
            "gateway": self.settings.hostname,
            **extra,
        }


def notice_settings(config: Config) -> NoticeSettings:
    """The notices' settings of a node's config (`[admin]` postmaster, operators, templates)."""
    return NoticeSettings(
        postmaster=config.postmaster,
        hostname=config.hostname,
        operators=config.admin.operators_address,
        templates=Templates(config.admin.templates_dir),
    )
