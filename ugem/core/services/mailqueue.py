"""Queued mail as operators manage it: list, show, hold, release, delete, retry, purge.

The queue itself is the relay's spool; this service sees it through
`MailQueue`, a small protocol the node wiring satisfies with an adapter over
the spool (`ugem.adapters.spool_queue.SpoolQueue`, the roof's), so the services
do not import the relay. Each change is audited with its count (`queue.delete`, target the
queue id; `queue.purge`, target the connection). An unknown queue id is a
`NotFoundError`; an action that does not fit the message's state (release
of mail that is not held) a `ConflictError` saying what fits; a bad filter a
`UsageError` naming it. Show gives the envelope and the header block;
`show_body` also the body, which is private correspondence: it needs the
`operator` role (`BODY_ROLE`; below it a `ForbiddenError` naming the role) and
every read is audited (`queue.read-body`, target the queue id) before the
body is given, so a read that cannot be audited gives nothing. The admin API
and `ugem queue show --body` both read bodies here.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Protocol

from ugem.core.clock import Clock
from ugem.core.errors import ConflictError, ForbiddenError, NotFoundError, UsageError
from ugem.core.services.audit import AuditLog
from ugem.core.services.tokens import Role

STATES = ("active", "deferred", "held")
OPERATOR_HOLD = "held by operator"
BODY_ROLE = Role.OPERATOR  # the least role that may read a queued message's body


@dataclass(frozen=True)
class MailItem:
    """One queued message's envelope and state (and its text when asked for)."""

    id: str
    state: str  # one of STATES
    sender: str
    rcpts: tuple[str, ...]
    original_rcpts: tuple[str, ...]
    size: int
    connection: str  # origin connection id; "" for inbound mail
    client_ip: str
    received_at: float
    attempts: int
    next_attempt: float
    last_error: str
    hold_reason: str
    text: bytes | None = None


class MailQueue(Protocol):
    """The spool operations the service needs (implemented by the relay's adapter)."""

    async def list(
        self, state: str | None, connection: str | None, limit: int
    ) -> builtins.list[MailItem]:
        """Oldest first, without text."""
        ...

    async def get(self, queue_id: str, with_text: bool) -> MailItem | None: ...

    async def hold(self, ids: builtins.list[str], reason: str) -> int: ...

    async def release(self, ids: builtins.list[str] | None, connection: str | None) -> int:
        """Make held mail due now (by ids, or all held mail of a connection)."""
        ...

    async def retry(self, ids: builtins.list[str]) -> int: ...

    async def delete(self, ids: builtins.list[str]) -> int: ...

    async def purge_held(self, connection: str) -> int:
        """Delete every held message of `connection`; how many."""
        ...


@dataclass(frozen=True)
class MailView:
    item: MailItem
    headers: str
    body: str | None


def split_text(text: bytes) -> tuple[str, str]:
    """The header block and the body of a message's text."""
    for blank in (b"\r\n\r\n", b"\n\n"):
        head, sep, body = text.partition(blank)
        if sep:
            return head.decode("utf-8", "replace"), body.decode("utf-8", "replace")
    return text.decode("utf-8", "replace"), ""


class QueueService:
    def __init__(self, queue: MailQueue, audit: AuditLog, clock: Clock) -> None:
        self.queue = queue
        self.audit = audit
        self.clock = clock

    async def list(
        self,
        state: str | None = None,
        connection: str | None = None,
        older_than: float | None = None,
        limit: int = 1000,
    ) -> builtins.list[MailItem]:
        """Oldest first; `older_than` seconds keeps only mail received that long ago."""
        if state is not None and state not in STATES:
            raise UsageError(f"state: {state!r} is not one of {', '.join(STATES)}")
        if limit < 1:
            raise UsageError(f"limit: {limit} is not valid; expected 1 or more")
        items = await self.queue.list(state, connection, limit)
        if older_than is not None:
            cutoff = self.clock.now() - older_than
            items = [i for i in items if i.received_at <= cutoff]
        return items

    async def get(self, queue_id: str, with_text: bool = False) -> MailItem:
        item = await self.queue.get(queue_id, with_text)
        if item is None:
            raise NotFoundError(f"no queued message {queue_id!r} (delivered, deleted or never)")
        return item

    async def show(self, queue_id: str) -> MailView:
        """The envelope and the header block, without the body."""
        item = await self.get(queue_id, with_text=True)
        headers, _ = split_text(item.text or b"")
        return MailView(item, headers, None)

    async def show_body(self, queue_id: str, actor: str, role: Role, reason: str = "") -> MailView:
        """The envelope, header block and body, for `actor` of `role`; audited first."""
        if not role.allows(BODY_ROLE):
            raise ForbiddenError(
                f"reading a message's body needs the {BODY_ROLE} role; {actor} is {role}"
            )
        item = await self.get(queue_id, with_text=True)
        details = {"connection": item.connection, "size": item.size}
        await self.audit.record(actor, "queue.read-body", queue_id, reason, details=details)
        headers, text = split_text(item.text or b"")
        return MailView(item, headers, text)

    async def hold(self, queue_id: str, actor: str, reason: str = "") -> int:
        item = await self.get(queue_id)
        if item.state == "held":
            raise ConflictError(f"queue id {queue_id} is held already ({item.hold_reason})")
        count = await self.queue.hold([queue_id], reason.strip() or OPERATOR_HOLD)
        return await self._audited(actor, "hold", queue_id, reason, count)

    async def release(self, queue_id: str, actor: str, reason: str = "") -> int:
        item = await self.get(queue_id)
        if item.state != "held":
            raise ConflictError(
                f"queue id {queue_id} is {item.state}, not held; "
                + ("retry it to make it due now" if item.state == "deferred" else "it is due now")
            )
        count = await self.queue.release([queue_id], None)
        return await self._audited(actor, "release", queue_id, reason, count)

    async def retry(self, queue_id: str, actor: str, reason: str = "") -> int:
        item = await self.get(queue_id)
        if item.state != "deferred":
            raise ConflictError(
                f"queue id {queue_id} is {item.state}, not deferred; "
                + ("release it instead" if item.state == "held" else "it is due now")
            )
        count = await self.queue.retry([queue_id])
        return await self._audited(actor, "retry", queue_id, reason, count)

    async def delete(self, queue_id: str, actor: str, reason: str = "") -> int:
        await self.get(queue_id)
        count = await self.queue.delete([queue_id])
        return await self._audited(actor, "delete", queue_id, reason, count)

    async def release_connection(self, connection: str, actor: str, reason: str = "") -> int:
        """Release all held mail of one connection (even what its suspension holds)."""
        count = await self.queue.release(None, _need(connection))
        return await self._audited(actor, "release-all", connection, reason, count)

    async def purge_connection(self, connection: str, actor: str, reason: str = "") -> int:
        """Delete all held mail of one connection, without bounces."""
        count = await self.queue.purge_held(_need(connection))
        return await self._audited(actor, "purge", connection, reason, count)

    async def _audited(self, actor: str, verb: str, target: str, reason: str, count: int) -> int:
        await self.audit.record(actor, f"queue.{verb}", target, reason, details={"count": count})
        return count


def _need(connection: str) -> str:
    if not connection.strip():
        raise UsageError("connection: empty; name the connection whose held mail this is")
    return connection.strip()
