"""Who is who: the in-memory view of the connections that the relay asks.

`Registry` answers "which connection is this client address" and "which
connection owns this domain" from memory, without I/O, so the SMTP path never
waits on the store. `sync()` asks the store for its version (one cheap call)
and reloads only when it changed, so a change made by the CLI, the API or
another node takes effect on the next SMTP command that syncs. State changes
go through `set_state`, which writes the store and the audit log, then tells
the listeners (the scheduler holds or releases mail). If the store fails
during a sync, the last good view is kept and the error is raised as
`StoreError` for the caller to answer 451.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from collections.abc import Awaitable, Callable

from ugem.core.clock import Clock
from ugem.core.errors import NotFoundError
from ugem.core.model import Connection, ConnState
from ugem.core.names import IPNetwork, canonical_domain
from ugem.core.store.base import AuditEntry, Store

Listener = Callable[[Connection | None, Connection], Awaitable[None]]


class Registry:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._version: int | None = None
        self._by_id: dict[str, Connection] = {}
        self._by_domain: dict[str, Connection] = {}
        self._by_host: dict[str, Connection] = {}  # single addresses, the common case
        self._by_net: list[tuple[IPNetwork, Connection]] = []  # wider CIDRs, longest first
        self._listeners: list[Listener] = []

    def on_change(self, listener: Listener) -> None:
        """Call `listener(old, new)` for every connection that changed in a reload."""
        self._listeners.append(listener)

    async def sync(self) -> None:
        version = await self.store.version()
        if version != self._version:
            await self._reload(version)

    async def _reload(self, version: int) -> None:
        conns = await self.store.list()
        old = self._by_id
        self._index(conns)
        self._version = version
        for conn in conns:
            before = old.get(conn.id)
            if before != conn:
                for listener in self._listeners:
                    await listener(before, conn)

    def _index(self, conns: list[Connection]) -> None:
        by_domain, by_host, by_net = {}, {}, []
        for conn in conns:
            if conn.state == ConnState.DISCONNECTED:
                continue
            for domain in conn.domains:
                by_domain[domain] = conn
            for server in conn.servers:
                net = ipaddress.ip_network(server)
                if net.num_addresses == 1:
                    by_host[str(net.network_address)] = conn
                else:
                    by_net.append((net, conn))
        by_net.sort(key=lambda item: item[0].prefixlen, reverse=True)
        self._by_id = {c.id: c for c in conns}
        self._by_domain, self._by_host, self._by_net = by_domain, by_host, by_net

    def get(self, conn_id: str) -> Connection | None:
        return self._by_id.get(conn_id)

    def all(self) -> list[Connection]:
        return list(self._by_id.values())

    def by_address(self, ip: str) -> Connection | None:
        """The live (connected or suspended) connection whose servers include `ip`."""
        conn = self._by_host.get(ip)
        if conn is not None:
            return conn
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped  # a dual-stack listener's view of an IPv4 client
        conn = self._by_host.get(str(addr))  # canonical spelling ("2001:DB8::1" -> "2001:db8::1")
        if conn is not None or not self._by_net:
            return conn
        for net, conn in self._by_net:
            if addr.version == net.version and addr in net:
                return conn
        return None

    def by_domain(self, domain: str) -> Connection | None:
        """The live connection that owns `domain` (already canonical, or canonicalised)."""
        conn = self._by_domain.get(domain)
        if conn is None:
            try:
                conn = self._by_domain.get(canonical_domain(domain))
            except ValueError:
                return None
        return conn

    async def set_state(
        self, conn_id: str, state: ConnState, reason: str, actor: str
    ) -> Connection:
        """Suspend, resume or disconnect a connection; audited; listeners told at once."""
        conn = await self.store.get(conn_id)
        if conn is None:
            raise NotFoundError(f"no connection {conn_id!r}")
        now = self.clock.now()
        new = dataclasses.replace(conn, state=state, state_reason=reason, state_changed_at=now)
        await self.store.put(new)
        before, after = _state_json(conn), _state_json(new)
        action = f"connection.{_verb(state)}"
        await self.store.audit(AuditEntry(now, actor, action, conn.id, reason, "", before, after))
        await self.sync()
        return new


def _state_json(conn: Connection) -> str:
    state = {"state": conn.state.value, "reason": conn.state_reason}
    return json.dumps(state, ensure_ascii=False, sort_keys=True)


def _verb(state: ConnState) -> str:
    return {
        ConnState.CONNECTED: "resume",
        ConnState.SUSPENDED: "suspend",
        ConnState.DISCONNECTED: "disconnect",
    }[state]
