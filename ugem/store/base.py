"""The interface every registry store implements, and the audit record.

A store keeps connections and the audit log durably. It is the source of
truth; the relay answers from `ugem.registry.Registry`, an in-memory copy that
reloads when `version()` changes. Every write bumps the version, so a change
made by another process (the CLI, another node) is seen on the next check.
Failures of the backend are raised as `StoreError`; a missing id as
`NotFoundError`; adding an id that exists as `ConflictError`.
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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

    async def audit(self, entry: AuditEntry) -> None: ...

    async def audit_log(
        self, target: str | None = None, limit: int = 100
    ) -> builtins.list[AuditEntry]:
        """Newest first."""
        ...

    async def close(self) -> None: ...
