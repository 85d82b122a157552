"""Connections as operators manage them: list, show, update, suspend, resume, disconnect.

State changes go through `Registry.set_state` (store, audit, then the
registry's listeners: the scheduler holds or releases the connection's mail),
so they take effect on the SMTP side at once. A change that makes no sense in
the current state is a `ConflictError` saying what to do instead (resume a
suspended connection, not a connected one); an update that would give a
server address or a domain to two connections is a `ConflictError` naming
the owner; a bad field is a `UsageError` naming it; an unknown id a
`NotFoundError`. Every change is audited with its actor, before and after.

A disconnection may be scheduled for a time agreed with the organisation
(paragraph 11): `disconnect(..., effective_at=T)` with T in the future stores
it on the connection (`Connection.disconnect`), and `disconnect_due`, which
the node runs every few seconds, applies it once the clock reaches T (actor
`schedule`, the reason given when it was scheduled; who scheduled it is
in that entry of the audit log). `cancel_disconnect`, or `resume` of a connection that is
connected, cancels it. With a `Notifier`, every change is mailed to the
organisation (suspended, suspension lifted, disconnection scheduled and
done) and a suspension also alerts the operators; a notice that cannot be
queued is logged and audited, and the change stands. While the node's store
is down or refused (`ugem.core.registry_watch`) every change is a
`StoreError` at once (503 in the API), and scheduled disconnections wait.
"""

from __future__ import annotations

import builtins
import dataclasses
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ugem.core.clock import Clock
from ugem.core.errors import ConflictError, NotFoundError, UsageError
from ugem.core.model import Connection, ConnState, Contact, Language, OrgKind, ScheduledDisconnect
from ugem.core.names import canonical_domain
from ugem.core.notices import NoticeKind
from ugem.core.paging import DEFAULT_LIMIT, Page, page_of
from ugem.core.registry import Registry
from ugem.core.services.audit import AuditLog
from ugem.core.services.notices import Addressee, Notifier, local_time
from ugem.core.store.base import Store

SCHEDULE_ACTOR = "schedule"  # the actor of a scheduled disconnection when it takes effect
MAX_SCHEDULE_AHEAD = 5 * 366 * 86400.0  # seconds: the latest a disconnection is scheduled


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
    def __init__(
        self,
        store: Store,
        registry: Registry,
        audit: AuditLog,
        clock: Clock,
        notifier: Notifier | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.audit = audit
        self.clock = clock
        self.notifier = notifier

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

    async def page(
        self,
        state: ConnState | None = None,
        kind: OrgKind | None = None,
        text: str | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[Connection]:
        """A page of `list`, by id (keyset: `ugem.core.paging`), and the total."""
        found = sorted(await self.list(state, kind, text), key=lambda c: c.id)
        return page_of(found, lambda c: c.id, limit, cursor, "connections")

    async def get(self, conn_id: str) -> Connection:
        conn = await self.store.get(_ident(conn_id))
        if conn is None:
            raise NotFoundError(f"no connection {conn_id!r}")
        return conn

    async def add(self, conn: Connection, actor: str, reason: str = "") -> Connection:
        """Register a new connection (ConflictError if its id, a domain or a server is taken)."""
        self.store_needed()
        await self._check_servers(conn)
        await self.store.add(conn)
        await self.audit.record(actor, "connection.add", conn.id, reason, after=conn.to_dict())
        await self.registry.sync()
        return conn

    async def update(self, conn_id: str, change: ConnectionChange, actor: str) -> Connection:
        self.store_needed()
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
        self.store_needed()
        conn = await self.get(conn_id)
        if not reason.strip():
            raise UsageError("reason: empty; say why the connection is suspended")
        _need(conn, ConnState.CONNECTED, "suspend")
        new = await self.registry.set_state(conn.id, ConnState.SUSPENDED, reason.strip(), actor)
        await self._notify(NoticeKind.SUSPENDED, new, actor, new.state_reason)
        if self.notifier is not None:
            await self.notifier.alert_suspended(Addressee.of(new), actor, new.state_reason)
        return new

    async def resume(self, conn_id: str, reason: str, actor: str) -> Connection:
        """Lift a suspension; of a connected connection, cancel its scheduled disconnection."""
        self.store_needed()
        conn = await self.get(conn_id)
        if conn.state == ConnState.CONNECTED and conn.disconnect is not None:
            return await self.cancel_disconnect(conn.id, reason, actor)
        _need(conn, ConnState.SUSPENDED, "resume")
        new = await self.registry.set_state(conn.id, ConnState.CONNECTED, reason.strip(), actor)
        await self._notify(NoticeKind.RESUMED, new, actor, new.state_reason)
        return new

    async def disconnect(
        self, conn_id: str, reason: str, actor: str, effective_at: float | None = None
    ) -> Connection:
        """Disconnect now, or at `effective_at` (Unix time) when that is in the future."""
        self.store_needed()
        conn = await self.get(conn_id)
        if conn.state == ConnState.DISCONNECTED:
            raise ConflictError(f"connection {conn.id!r} is disconnected already; nothing to do")
        now = self.clock.now()
        if effective_at is not None and effective_at > now + MAX_SCHEDULE_AHEAD:
            raise UsageError("effective_at: more than five years ahead; agree on a nearer date")
        if effective_at is not None and effective_at > now:
            return await self._schedule(conn, effective_at, reason.strip(), actor)
        return await self._disconnect_now(conn, reason.strip(), actor)

    async def cancel_disconnect(self, conn_id: str, reason: str, actor: str) -> Connection:
        self.store_needed()
        conn = await self.get(conn_id)
        if conn.disconnect is None:
            raise ConflictError(f"connection {conn.id!r} has no disconnection scheduled")
        return await self._reschedule(conn, None, "connection.disconnect-cancel", reason, actor)

    async def disconnect_due(self) -> builtins.list[Connection]:
        """Apply every scheduled disconnection whose time has come; the ones applied (none
        while the node's store is down: they wait until it is back)."""
        if self.registry.watch.status().degraded:
            return []
        now = self.clock.now()
        done = []
        for conn in await self.store.list():
            plan = conn.disconnect
            if plan is None or plan.at > now:
                continue
            if conn.state == ConnState.DISCONNECTED:  # disconnected meanwhile: drop the plan
                await self.store.put(dataclasses.replace(conn, disconnect=None))
                continue
            done.append(await self._disconnect_now(conn, plan.reason, SCHEDULE_ACTOR))
        return done

    def store_needed(self) -> None:
        """StoreError at once while the node's store is down or refused (its registry's
        watch knows): a change is never half made, nor answered "no connection" by a store
        that came back empty."""
        self.registry.watch.require_store()

    async def _schedule(self, conn: Connection, at: float, reason: str, actor: str) -> Connection:
        plan = ScheduledDisconnect(at, reason, actor, self.clock.now())
        new = await self._reschedule(conn, plan, "connection.disconnect-schedule", reason, actor)
        effective = local_time(at)
        await self._notify(NoticeKind.DISCONNECT_SCHEDULED, new, actor, reason, effective)
        return new

    async def _reschedule(
        self,
        conn: Connection,
        plan: ScheduledDisconnect | None,
        action: str,
        reason: str,
        actor: str,
    ) -> Connection:
        new = dataclasses.replace(conn, disconnect=plan)
        await self.store.put(new)
        await self.audit.record(
            actor, action, conn.id, reason.strip(),
            before=_plan(conn.disconnect), after=_plan(plan),
        )  # fmt: skip
        await self.registry.sync()
        return new

    async def _disconnect_now(self, conn: Connection, reason: str, actor: str) -> Connection:
        new = await self.registry.set_state(conn.id, ConnState.DISCONNECTED, reason, actor)
        if new.disconnect is not None:
            new = dataclasses.replace(new, disconnect=None)
            await self.store.put(new)
        await self._notify(NoticeKind.DISCONNECTED, new, actor, reason)
        return new

    async def _notify(
        self, kind: NoticeKind, conn: Connection, actor: str, reason: str, effective_at: str = ""
    ) -> None:
        if self.notifier is None:
            return
        extra = {"effective_at": effective_at} if effective_at else {}
        await self.notifier.send(kind, Addressee.of(conn), actor, reason, **extra)

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


def _plan(plan: ScheduledDisconnect | None) -> dict[str, object] | None:
    return None if plan is None else dataclasses.asdict(plan)
