"""The interface every registry store implements, and the audit record.

A store keeps connections and the audit log durably. It is the source of
truth; the relay answers from `ugem.registry.Registry`, an in-memory copy that
reloads when `version()` changes. Every write bumps the version, so a change
made by another process (the CLI, another node) is seen on the next check.
Failures of the backend are raised as `StoreError`; a missing id as
`NotFoundError`; adding an id that exists as `ConflictError`.

The audit log is a hash chain: each entry is stored as an `AuditRecord` with a
sequence number (1, 2, 3, ... without gaps), the hash of the record before it
and its own hash over both and the entry (see `ugem.store.codec.seal`), and
the store keeps the head (last sequence number and hash) apart, so an edited,
inserted or deleted record breaks the chain (`ugem.services.audit` verifies
it). Appending reads the head and writes the record in one atomic step.

Besides connections a store keeps small JSON documents by kind and id
(`doc_*`: API tokens, applications); they do not change `version()`, which
only tells the registry that connections (or the audit log) changed.
"""

from __future__ import annotations

import builtins
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from ugem.model import Connection


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
    hash: str  # sha256 over prev, seq and the entry (`ugem.store.codec.seal`)
    entry: AuditEntry


class Store(Protocol):
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

    async def close(self) -> None: ...
