"""Connections as operators manage them: list, show, update, suspend, resume, disconnect.

State changes go through `Registry.set_state` (store, audit, then the
registry's listeners: the scheduler holds or releases the connection's mail),
so they take effect on the SMTP side at once. A change that makes no sense in
the current state is a `ConflictError` saying what to do instead (resume a
suspended connection, not a connected one); an update that would give a
server address or a domain to two connections is a `ConflictError` naming
the owner; a bad field is a `UsageError` naming it; an unknown id a
`NotFoundError`. Every change is audited with its actor, before and after.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ugem.clock import Clock
from ugem.errors import ConflictError, NotFoundError, UsageError
from ugem.model import Connection, ConnState, Contact, Language, OrgKind
from ugem.names import canonical_domain
from ugem.registry import Registry
from ugem.services.audit import AuditLog
from ugem.store.base import Store


@dataclass(frozen=True)
class ConnectionChange:
    """The fields an update sets; None leaves a field as it is."""

    org_name: str | None = None
    servers: Sequence[str] | None = None
    domains: Sequence[str] | None = None
    contacts: Sequence[Contact] | None = None
    language: Language | None = None


def server_owner(conns: Iterable[Connection], servers: Iterable[str], me: str) -> str | None:
    """'<server> belongs to connection <id>' for the first of `servers` that overlaps
    a server of another live connection than `me`, else None."""
    nets = [ipaddress.ip_network(s, strict=False) for s in servers]
    for conn in conns:
        if conn.id == me or conn.state == ConnState.DISCONNECTED:
            continue
        for theirs in map(ipaddress.ip_network, conn.servers):
            for mine in nets:
                if mine.version == theirs.version and mine.overlaps(theirs):
                    return f"server {mine} overlaps {theirs} of connection {conn.id!r}"
    return None


def matches(conn: Connection, text: str) -> bool:
    """Whether `text` (case-insensitive) is in the id, name, a domain, server or contact."""
    needle = text.casefold()
    hay = [conn.id, conn.org_name, *conn.domains, *conn.servers]
    hay += [f"{c.full_name} {c.email}" for c in conn.contacts]
    return any(needle in item.casefold() for item in hay)


class ConnectionService:
    def __init__(self, store: Store, registry: Registry, audit: AuditLog, clock: Clock) -> None:
        self.store = store
        self.registry = registry
        self.audit = audit
        self.clock = clock

    async def list(
        self,
        state: ConnState | None = None,
        kind: OrgKind | None = None,
        text: str | None = None,
    ) -> list[Connection]:
        return [
            c
            for c in await self.store.list()
            if (state is None or c.state == state)
            and (kind is None or c.kind == kind)
            and (not text or matches(c, text))
        ]

    async def get(self, conn_id: str) -> Connection:
        conn = await self.store.get(_ident(conn_id))
        if conn is None:
            raise NotFoundError(f"no connection {conn_id!r}")
        return conn

    async def add(self, conn: Connection, actor: str, reason: str = "") -> Connection:
        """Register a new connection (ConflictError if its id, a domain or a server is taken)."""
        await self._check_servers(conn)
        await self.store.add(conn)
        await self.audit.record(actor, "connection.add", conn.id, reason, after=conn.to_dict())
        await self.registry.sync()
        return conn

    async def update(self, conn_id: str, change: ConnectionChange, actor: str) -> Connection:
        old = await self.get(conn_id)
        fields = {k: v for k, v in dataclasses.asdict(change).items() if v is not None}
        if change.contacts is not None:
            fields["contacts"] = tuple(change.contacts)  # asdict made them dicts
        for key in ("servers", "domains"):
            if key in fields:
                fields[key] = tuple(fields[key])
        new = dataclasses.replace(old, **fields)
        if new == old:
            return old
        await self._check_servers(new)
        await self.store.put(new)
        await self.audit.record(
            actor, "connection.update", new.id, before=old.to_dict(), after=new.to_dict()
        )
        await self.registry.sync()
        return new

    async def suspend(self, conn_id: str, reason: str, actor: str) -> Connection:
        conn = await self.get(conn_id)
        if not reason.strip():
            raise UsageError("reason: empty; say why the connection is suspended")
        _need(conn, ConnState.CONNECTED, "suspend")
        return await self.registry.set_state(conn.id, ConnState.SUSPENDED, reason.strip(), actor)

    async def resume(self, conn_id: str, reason: str, actor: str) -> Connection:
        conn = await self.get(conn_id)
        _need(conn, ConnState.SUSPENDED, "resume")
        return await self.registry.set_state(conn.id, ConnState.CONNECTED, reason.strip(), actor)

    async def disconnect(self, conn_id: str, reason: str, actor: str) -> Connection:
        conn = await self.get(conn_id)
        if conn.state == ConnState.DISCONNECTED:
            raise ConflictError(f"connection {conn.id!r} is disconnected already; nothing to do")
        return await self.registry.set_state(conn.id, ConnState.DISCONNECTED, reason.strip(), actor)

    async def _check_servers(self, conn: Connection) -> None:
        clash = server_owner(await self.store.list(), conn.servers, conn.id)
        if clash:
            raise ConflictError(f"{clash}; a server belongs to one connection, change that first")


def _ident(conn_id: str) -> str:
    try:
        return canonical_domain(conn_id)
    except ValueError:
        raise NotFoundError(f"no connection {conn_id!r} (not a domain name)") from None


def _need(conn: Connection, state: ConnState, verb: str) -> None:
    if conn.state == state:
        return
    hint = {
        ConnState.SUSPENDED: "it is suspended already; resume lifts a suspension",
        ConnState.CONNECTED: "it is connected, not suspended; nothing to resume",
        ConnState.DISCONNECTED: "it is disconnected; a new application connects it again",
    }[conn.state]
    raise ConflictError(f"cannot {verb} connection {conn.id!r}: {hint}")
