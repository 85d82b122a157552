"""The interface every registry store implements, and the audit record.

A store keeps connections and the audit log durably. It is the source of
truth; the relay answers from `ugem.core.registry.Registry`, an in-memory copy that
reloads when `version()` changes. Every write bumps the version, so a change
made by another process (the CLI, another node) is seen on the next check.
Failures of the backend are raised as `StoreError`; a missing id as
`NotFoundError`; adding an id that exists as `ConflictError`.

The audit log is a hash chain: each entry is stored as an `AuditRecord` with a
sequence number (1, 2, 3, ... without gaps), the hash of the record before it
and its own hash over both and the entry (see `ugem.core.store.codec.seal`), and
the store keeps the head (last sequence number and hash) apart, so an edited,
inserted or deleted record breaks the chain (`ugem.core.services.audit` verifies
it). Appending reads the head and writes the record in one atomic step.

Besides connections a store keeps small JSON documents by kind and id
(`doc_*`: API tokens, applications, overrides); they do not change
`version()`, which only tells the registry that connections (or the audit
log) changed. Incidents of the anomaly detector (`incident_*`) are numbered
by the store (1, 2, 3, ...); a connection has at most one incident that is
not closed, which `incident_open` keeps atomically (a second verdict finds
the first incident), and `incident_update` replaces one only if nobody
changed it since it was read (its `rev`), so the detector adding evidence
and an operator closing it lose neither change. They do not change
`version()` either.

A journal (`journal_*`) is a capped, append-only list of JSON texts by kind
(the feedback-loop complaints, `ugem.core.services.complaints`): each entry is
numbered 1, 2, 3, ... per kind, and an append drops the oldest entries beyond
the newest `cap` in the same atomic step, so a journal never holds more than
its cap and no two writers (nodes, workers) get one number. What was dropped
is counted by the numbers: `journal_size` gives the last number and the
entries kept. Journals do not change `version()` either.

A store carries a generation: an id written once, by the first registry that
reads the store with nothing of its own to lose (`init_generation`: a node's
first start), kept in one key (Redis) or one row (SQLite). With the version it
tells a node whether the store it reads is the one its copy came from
(`ugem.core.store_trust`): a store that lost its data has no generation, one
made anew has another. `generation()` reads both at once; `restore_registry`
(`ugem store restore`) writes a copy's connections and generation back, with
a version above the copy's, in one atomic step (a node never sees half of
it).
"""

from __future__ import annotations

import builtins
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from ugem.core.model import Connection


@dataclass(frozen=True)
class AuditEntry:
    """Who did what, when and why: one state change by an operator or the detector."""

    ts: float
    actor: str  # "cli:<user>", "api:<token name>", "detector"
    action: str  # "connection.add", "connection.suspend", "queue.delete", ...
    target: str  # the connection id, queue id, ...
    reason: str = ""
    details: str = ""  # JSON text with anything else worth keeping
    before: str = ""  # JSON text: the target as it was ("" when it did not exist or no matter)
    after: str = ""  # JSON text: the target as it became

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


GENESIS = "0" * 64  # the "previous hash" of the first record


@dataclass(frozen=True)
class AuditRecord:
    """An audit entry as stored: its place in the chain and the hashes that seal it."""

    seq: int
    prev: str  # hash of record seq-1 (GENESIS for the first)
    hash: str  # sha256 over prev, seq and the entry (`ugem.core.store.codec.seal`)
    entry: AuditEntry


INCIDENT_CLOSED = "closed"  # the one incident state that frees its connection for a new one


@dataclass(frozen=True)
class IncidentRecord:
    """An incident as stored: what the store indexes, and the rest as JSON text
    (`ugem.core.services.incidents` gives it meaning)."""

    id: int
    connection: str
    state: str  # "open", "acknowledged", "closed" (final)
    rev: int  # 1 when opened, one more at every update
    data: str


class Store(Protocol):
    # Whether the store runs in this process (SQLite: its calls never yield to the loop, so
    # a bounded wait on them cannot help and only costs); False: it is across a network.
    local: bool

    def change_mark(self) -> object | None:
        """A cheap mark of what the store holds, equal while nothing changed it; None when
        no such check is cheap (a store across a network) or it cannot be trusted now. The
        SMTP path skips its sync while the mark stays what it was at its last sync."""
        ...

    async def add(self, conn: Connection) -> None:
        """Create a connection; ConflictError if the id or one of its domains exists."""
        ...

    async def put(self, conn: Connection) -> None:
        """Create or replace a connection by id."""
        ...

    async def get(self, conn_id: str) -> Connection | None: ...

    async def list(self) -> list[Connection]:
        """All connections, ordered by id."""
        ...

    async def delete(self, conn_id: str) -> bool: ...

    async def version(self) -> int:
        """A number that changes on every write by anyone; cheap to ask."""
        ...

    async def generation(self) -> tuple[str | None, int]:
        """(the generation id, None when none was written; the version), read together."""
        ...

    async def init_generation(self, generation: str) -> str:
        """Write `generation` unless the store has one already; the one it has now."""
        ...

    async def restore_registry(
        self, generation: str, min_version: int, conns: builtins.list[Connection]
    ) -> int:
        """Put `conns` (replacing those of their ids; others stay), make the generation
        `generation` and the version at least `min_version` (and above what it was), all in
        one atomic step; the new version. ConflictError (nothing written) if a domain of
        one of them belongs to a connection not among them."""
        ...

    async def audit(self, entry: AuditEntry) -> None:
        """Append `entry` to the chain (atomically with the head); bumps the version."""
        ...

    async def audit_records(
        self, target: str | None = None, limit: int = 100, before: int | None = None
    ) -> builtins.list[AuditRecord]:
        """Records newest first (of one target if given; only seq < `before` if given)."""
        ...

    async def audit_chain(self, offset: int = 0, limit: int = 1000) -> builtins.list[AuditRecord]:
        """Records in stored order (oldest first), skipping the first `offset`: the chain
        as it is, gaps and all, for verification."""
        ...

    async def audit_head(self) -> tuple[int, str]:
        """(last seq, its hash) as kept apart from the records; (0, GENESIS) when empty."""
        ...

    async def doc_add(self, kind: str, doc_id: str, data: str) -> None:
        """Create document `doc_id` of `kind`; ConflictError if it exists."""
        ...

    async def doc_put(self, kind: str, doc_id: str, data: str) -> None:
        """Create or replace a document."""
        ...

    async def doc_get(self, kind: str, doc_id: str) -> str | None: ...

    async def doc_list(self, kind: str) -> builtins.list[tuple[str, str]]:
        """(id, data) of every document of `kind`, ordered by id."""
        ...

    async def audit_log(
        self, target: str | None = None, limit: int = 100
    ) -> builtins.list[AuditEntry]:
        """Newest first."""
        ...

    async def incident_open(self, connection: str, data: str) -> tuple[IncidentRecord, bool]:
        """A new incident of `connection` (state "open", rev 1, the next number) holding
        `data`, and True; or, when the connection has one that is not closed, that one as
        it is, and False. Atomic: two callers never both open one."""
        ...

    async def incident_update(self, record: IncidentRecord) -> bool:
        """Store `record`'s state and data if the stored incident's rev is still
        `record.rev` (its rev becomes one more): True; False when another writer changed it
        since it was read. NotFoundError for an unknown id; ConflictError to reopen a
        closed incident (closed is final)."""
        ...

    async def incident_get(self, incident_id: int) -> IncidentRecord | None: ...

    async def incident_list(
        self, state: str | None = None, connection: str | None = None, limit: int = 100
    ) -> builtins.list[IncidentRecord]:
        """Incidents newest first (highest number first), of one state and connection if
        given, at most `limit` (UsageError below 1)."""
        ...

    async def journal_append(self, kind: str, data: str, cap: int) -> tuple[int, int]:
        """Append `data` to journal `kind` as its next number and drop its entries older
        than the newest `cap`, atomically: (that number, entries dropped by this append).
        UsageError for a cap below 1."""
        ...

    async def journal_list(
        self, kind: str, limit: int = 100, before: int | None = None
    ) -> builtins.list[tuple[int, str]]:
        """(number, data) of journal `kind`, newest first, only numbers below `before`
        if given, at most `limit` (UsageError below 1)."""
        ...

    async def journal_size(self, kind: str) -> tuple[int, int]:
        """(the last number given, the entries kept) of journal `kind`; (0, 0) when none:
        last - kept entries were dropped."""
        ...

    async def close(self) -> None: ...
