"""The data model shared by every part: connections, their contacts and states.

A *connection* is one connected organisation's mail system: its id is its
primary mail domain. Objects here are immutable; a change makes a new one
(`dataclasses.replace`). `Connection.from_dict` validates what it reads and
raises `UsageError` naming the field; `to_dict` gives JSON-ready data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from ugem.core.errors import UsageError
from ugem.core.names import canonical_domain, canonical_network


class OrgKind(StrEnum):
    STATE_BODY = "state-body"
    LOCAL_GOVERNMENT = "local-government"
    STATE_LEGAL_ENTITY = "state-legal-entity"
    QUASI_PUBLIC = "quasi-public"
    CRITICAL_INFRASTRUCTURE = "critical-infrastructure"


class ConnState(StrEnum):
    CONNECTED = "connected"
    SUSPENDED = "suspended"
    DISCONNECTED = "disconnected"


class Language(StrEnum):
    KK = "kk"
    RU = "ru"
    EN = "en"


def _enum(kind: type[StrEnum], field_name: str, value: object) -> Any:
    try:
        return kind(str(value))
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise UsageError(f"{field_name}: {value!r} is not one of {allowed}") from None


@dataclass(frozen=True)
class Contact:
    full_name: str
    email: str
    office_phone: str = ""
    mobile: str = ""

    def __post_init__(self) -> None:
        if not self.full_name.strip():
            raise UsageError("contact: the full name is empty")
        local, at, domain = self.email.rpartition("@")
        if not at or not local:
            raise UsageError(f"contact: {self.email!r} is not an e-mail address")
        try:
            canonical_domain(domain)
        except ValueError as exc:
            raise UsageError(f"contact: {self.email!r}: {exc}") from None


@dataclass(frozen=True)
class ScheduledDisconnect:
    """A disconnection agreed with the organisation for a later time (paragraph 11)."""

    at: float  # Unix time it takes effect
    reason: str = ""
    by: str = ""  # the actor who scheduled it
    scheduled_at: float = 0.0


@dataclass(frozen=True)
class Connection:
    id: str
    org_name: str
    kind: OrgKind
    domains: tuple[str, ...]
    servers: tuple[str, ...]
    contacts: tuple[Contact, ...] = ()
    language: Language = Language.RU
    state: ConnState = ConnState.CONNECTED
    state_reason: str = ""
    state_changed_at: float = 0.0
    created_at: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)
    disconnect: ScheduledDisconnect | None = None

    def __post_init__(self) -> None:
        try:
            ident = canonical_domain(self.id)
            domains = tuple(dict.fromkeys(canonical_domain(d) for d in self.domains))
        except ValueError as exc:
            raise UsageError(f"domain: {exc}") from None
        try:
            servers = tuple(dict.fromkeys(str(canonical_network(s)) for s in self.servers))
        except ValueError as exc:
            raise UsageError(f"server: {exc}") from None
        if ident not in domains:
            domains = (ident, *domains)
        if not self.org_name.strip():
            raise UsageError("org: the organisation name is empty")
        if not servers:
            raise UsageError("server: a connection needs at least one mail server address")
        object.__setattr__(self, "id", ident)
        object.__setattr__(self, "domains", domains)
        object.__setattr__(self, "servers", servers)
        object.__setattr__(self, "kind", _enum(OrgKind, "kind", self.kind))
        object.__setattr__(self, "language", _enum(Language, "lang", self.language))
        object.__setattr__(self, "state", _enum(ConnState, "state", self.state))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        data["language"] = self.language.value
        data["state"] = self.state.value
        data["domains"] = list(self.domains)
        data["servers"] = list(self.servers)
        data["contacts"] = [asdict(c) for c in self.contacts]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Connection:
        try:
            contacts = tuple(Contact(**c) for c in data.get("contacts", ()))
            return cls(
                id=data["id"],
                org_name=data["org_name"],
                kind=data["kind"],
                domains=tuple(data.get("domains", ())),
                servers=tuple(data.get("servers", ())),
                contacts=contacts,
                language=data.get("language", Language.RU),
                state=data.get("state", ConnState.CONNECTED),
                state_reason=data.get("state_reason", ""),
                state_changed_at=float(data.get("state_changed_at", 0.0)),
                created_at=float(data.get("created_at", 0.0)),
                extra=dict(data.get("extra", {})),
                disconnect=_scheduled(data.get("disconnect")),
            )
        except KeyError as exc:
            raise UsageError(f"connection: missing field {exc.args[0]}") from None
        except TypeError as exc:
            raise UsageError(f"connection: {exc}") from None


def _scheduled(data: Any) -> ScheduledDisconnect | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise UsageError("disconnect: expected an object or null")
    return ScheduledDisconnect(
        at=float(data["at"]),
        reason=str(data.get("reason", "")),
        by=str(data.get("by", "")),
        scheduled_at=float(data.get("scheduled_at", 0.0)),
    )
