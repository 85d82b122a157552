"""Who is who: the in-memory view of the connections that the relay asks.

`Registry` answers "which connection is this client address" and "which
connection owns this domain" from memory, without I/O. `sync()` asks the store
for its generation and version (one round trip) and reloads only when they
changed, so a change made by the CLI, the API or another node takes effect on
the next SMTP command that syncs. It never takes an empty or older store for
the truth: what the store holds replaces the view only when
`ugem.core.store_trust.refusal` allows it (else `StoreRefused`, and the view
is kept); a store with no generation is given one when this registry holds
nothing to lose. Every reload writes the view to the registry's `CopyFile`
(when it has one: a node's, `ugem.core.registry_copy`), with the store's
generation, version and the time it was read; a sync that finds nothing new
marks the view confirmed (`confirmed_at`) and refreshes the copy's time
about once a minute. `load_copy()` takes the view from that file (a node
starting while its store is down).

The SMTP path does not call `sync()` itself but `relay_sync()`, through the
registry's `watch` (`ugem.core.registry_watch.StoreWatch`: the circuit
breaker, the bounded wait, the background probe, the staleness bound and what
`/readyz` says). State changes go through `set_state`, which needs the store
(StoreError at once while the watch knows it is down), writes it and the
audit log, then tells the listeners (the scheduler holds or releases mail).
If the store fails during a sync, the last good view is kept and the error is
raised as `StoreError`.

While the store cannot take a change, the detector may still suspend a
connection in this node alone: `hold_locally` lays a suspension over the
store's view (the relay answers 451, the scheduler holds the mail, listeners
are told), kept over every reload until `release_local` lifts it, once the
suspension is recorded in the store (or found not to be wanted). A local hold
is never written to the copy on disk: the copy is the store's view, and a
node restarted during the outage starts without the hold.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import uuid
from collections.abc import Awaitable, Callable

from ugem.core.clock import Clock
from ugem.core.errors import NotFoundError, StoreError, StoreRefused
from ugem.core.log import event
from ugem.core.model import Connection, ConnState
from ugem.core.names import IPNetwork, canonical_domain
from ugem.core.registry_copy import CopyFile, RegistryCopy
from ugem.core.registry_watch import Freshness, StoreWatch
from ugem.core.store.base import AuditEntry, Store
from ugem.core.store_trust import Held, Seen, refusal

log = logging.getLogger(__name__)

Listener = Callable[[Connection | None, Connection], Awaitable[None]]
COPY_REFRESH = 60.0  # seconds: a confirmed view's copy on disk gets its new time this often


def new_generation() -> str:
    return uuid.uuid4().hex


class Registry:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        freshness: Freshness | None = None,
        copy: CopyFile | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.generation: str | None = None  # the store's, as of the view
        self.confirmed_at: float | None = None  # Unix time the store last confirmed the view
        self._copy = copy
        self._version: int | None = None
        self._by_id: dict[str, Connection] = {}
        self._stored: list[Connection] = []  # the store's view, without the local holds
        self._holds: dict[str, str] = {}  # connection -> why it is held here alone
        self._by_domain: dict[str, Connection] = {}
        self._by_host: dict[str, Connection] = {}  # single addresses, the common case
        self._by_net: list[tuple[IPNetwork, Connection]] = []  # wider CIDRs, longest first
        self._listeners: list[Listener] = []
        self.watch = StoreWatch(self, clock, freshness or Freshness(), bounded=not store.local)

    def on_change(self, listener: Listener) -> None:
        """Call `listener(old, new)` for every connection that changed in a reload."""
        self._listeners.append(listener)

    @property
    def version(self) -> int | None:
        """The store's version, as of the view (None: no view yet)."""
        return self._version

    def change_mark(self) -> object | None:
        """The store's mark of what it holds (Store.change_mark)."""
        return self.store.change_mark()

    async def relay_sync(self) -> bool:
        """The SMTP path's sync (`StoreWatch.relay_sync`): whether the view may serve."""
        return await self.watch.relay_sync()

    async def sync(self) -> None:
        """Take what the store holds if it may be trusted; StoreRefused (view kept) if not."""
        generation, version = await self.store.generation()
        held = self._held()
        if generation is None and refusal(held, Seen(None, version)) is None:
            generation = await self.store.init_generation(new_generation())
        _refuse(held, Seen(generation, version))
        if generation == self.generation and version == self._version:
            await self._confirmed()
            return
        conns = await self.store.list()
        _refuse(held, Seen(generation, version, len(conns)))
        assert generation is not None  # a store without one is refused or given one
        await self._reload(generation, version, conns)

    def _held(self) -> Held | None:
        if self._version is None:
            return None
        return Held(self.generation, self._version, len(self._by_id))

    def load_copy(self) -> RegistryCopy | None:
        """Take the view from the copy on disk (None: there is none); StoreError if damaged."""
        copy = None if self._copy is None else self._copy.read()
        if copy is not None:
            self._index(list(copy.connections))
            self.generation, self._version = copy.generation, copy.version
            self.confirmed_at = copy.read_at
        return copy

    def snapshot(self) -> RegistryCopy:
        """The store's view as a copy (what `load_copy` would take back); no local hold."""
        assert self.generation is not None and self._version is not None
        return RegistryCopy(
            self.generation, self._version, self.confirmed_at or 0.0, tuple(self._stored)
        )

    async def _confirmed(self) -> None:
        self.confirmed_at = self.clock.now()
        written = self._copy.written_at if self._copy is not None else None
        if written is None or self.confirmed_at - written >= COPY_REFRESH:
            await self._keep()

    async def _keep(self) -> None:
        """Write the view to the copy on disk; a failure is logged, the view stands."""
        if self._copy is None:
            return
        try:
            await self._copy.save(self.snapshot())
        except StoreError as exc:
            event(log, "registry_copy_not_written", logging.WARNING, error=str(exc))

    async def _reload(self, generation: str, version: int, conns: list[Connection]) -> None:
        old = self._by_id
        self._index(conns)
        self.generation, self._version = generation, version
        self.confirmed_at = self.clock.now()
        await self._keep()
        await self._tell(old, self.all())

    def _index(self, stored: list[Connection]) -> None:
        self._stored = stored
        conns = [self._held_view(c) for c in stored] if self._holds else stored
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

    def _held_view(self, conn: Connection) -> Connection:
        """`conn` as this node serves it: suspended while held locally and connected."""
        why = self._holds.get(conn.id)
        if why is None or conn.state != ConnState.CONNECTED:
            return conn
        return dataclasses.replace(conn, state=ConnState.SUSPENDED, state_reason=why)

    async def hold_locally(self, conn_id: str, reason: str) -> bool:
        """Suspend connected `conn_id` in this node alone (the store is unreachable);
        False when it is not connected here. Listeners are told, as for a reload."""
        conn = self._by_id.get(conn_id)
        if conn is None or conn.state != ConnState.CONNECTED:
            return False
        self._holds[conn_id] = reason
        await self._reindex()
        return True

    async def release_local(self, conn_id: str) -> None:
        """Lift this node's own hold of `conn_id`: the store's view of it serves again."""
        if self._holds.pop(conn_id, None) is not None:
            await self._reindex()

    def held_locally(self, conn_id: str) -> bool:
        return conn_id in self._holds

    async def _reindex(self) -> None:
        old = self._by_id
        self._index(self._stored)
        await self._tell(old, self.all())

    async def _tell(self, old: dict[str, Connection], conns: list[Connection]) -> None:
        for conn in conns:
            before = old.get(conn.id)
            if before != conn:
                for listener in self._listeners:
                    await listener(before, conn)

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
        self.watch.require_store()
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


def _refuse(held: Held | None, seen: Seen) -> None:
    why = refusal(held, seen)
    if why is not None:
        raise StoreRefused(why)


def _state_json(conn: Connection) -> str:
    state = {"state": conn.state.value, "reason": conn.state_reason}
    return json.dumps(state, ensure_ascii=False, sort_keys=True)


def _verb(state: ConnState) -> str:
    return {
        ConnState.CONNECTED: "resume",
        ConnState.SUSPENDED: "suspend",
        ConnState.DISCONNECTED: "disconnect",
    }[state]
