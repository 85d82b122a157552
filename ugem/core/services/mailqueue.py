"""Queued mail as operators manage it: list, show, hold, release, delete, retry, purge.

The one logic of queue management: the admin API and `ugem queue` both go
through `QueueService`. The queue itself is the relay's spools (every
worker's); this service sees them through `MailQueue`, a small protocol the
roof satisfies with an adapter (`ugem.adapters.spool_queue.SpoolQueue`), so the
services do not import the relay. `change` holds, releases, retries or
deletes several messages at once, all or nothing as far as checks go: every
id is looked up and every state checked before the first change, so an
unknown id (a `NotFoundError` naming every unknown one) or an action that does
not fit a message's state (release of mail that is not held: a `ConflictError`
saying what fits) changes nothing; the one-id methods are `change` of one id.
A hold without a reason is `OPERATOR_HOLD`. Each change is audited with its
count (`queue.hold`, `queue.release`, `queue.retry`, `queue.delete`, target
the queue id; `queue.release-all` and `queue.purge`, target the connection;
`queue.retry-all`, target `deferred`); a bad filter is a `UsageError` naming
it. `page` is a page of the list, keyset on the queue id (the spools' own
order, `ugem.core.paging`), with the total the spools count. Show gives the
envelope and the header block; `show_body` also the body,
which is private correspondence: it needs the `operator` role (`BODY_ROLE`;
below it a `ForbiddenError` naming the role) and every read is audited
(`queue.read-body`, target the queue id) before the body is given, so a read
that cannot be audited gives nothing. Errors of the queue itself (the spool's
`SpoolError`) and of the audit log (`StoreError`) pass through. With a
`journal` (the node's `EventBus.publish`, or the CLI's message index), each
message held, released or deleted, and each connection's mail released or
purged at once, is also told to it as a `QueueChange` naming the actor and
the reason, for the mail log (`ugem.core.maillog`).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ugem.core.clock import Clock
from ugem.core.errors import ConflictError, ForbiddenError, NotFoundError, UsageError
from ugem.core.events import Publish, QueueChange, QueueEvent
from ugem.core.paging import DEFAULT_LIMIT, Page, after, check_limit, page_from
from ugem.core.services.audit import AuditLog
from ugem.core.services.tokens import Role

STATES = ("active", "deferred", "held")
OPERATOR_HOLD = "held by operator"  # the hold reason when the operator gives none
Verb = Literal["hold", "release", "retry", "delete"]  # what `change` does
_CHANGES: dict[str, QueueEvent] = {"hold": "held", "release": "released", "delete": "deleted"}
BODY_ROLE = Role.OPERATOR  # the least role that may read a queued message's body
PAGE_TAG = "queue"  # the cursors of `page`


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
        self,
        state: str | None,
        connection: str | None,
        limit: int,
        after: str | None = None,
        received_by: float | None = None,
    ) -> builtins.list[MailItem]:
        """Oldest first (by id), without text; only ids after `after` and mail received at
        or before `received_by` if given."""
        ...

    async def count(
        self, state: str | None, connection: str | None, received_by: float | None = None
    ) -> int:
        """How many messages `list` would give without a limit or `after`."""
        ...

    async def get(self, queue_id: str, with_text: bool) -> MailItem | None: ...

    async def hold(self, ids: builtins.list[str], reason: str) -> int: ...

    async def release(self, ids: builtins.list[str] | None, connection: str | None) -> int:
        """Make held mail due now (by ids, or all held mail of a connection)."""
        ...

    async def retry(self, ids: builtins.list[str] | None) -> int:
        """Make deferred mail due now (by ids, or all deferred mail when None)."""
        ...

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
    def __init__(
        self, queue: MailQueue, audit: AuditLog, clock: Clock, journal: Publish | None = None
    ) -> None:
        self.queue = queue
        self.audit = audit
        self.clock = clock
        self.journal = journal  # told of each message held, released, deleted

    async def list(
        self,
        state: str | None = None,
        connection: str | None = None,
        older_than: float | None = None,
        limit: int = 1000,
    ) -> builtins.list[MailItem]:
        """Oldest first; `older_than` seconds keeps only mail received that long ago."""
        if limit < 1:
            raise UsageError(f"limit: {limit} is not valid; expected 1 or more")
        cutoff = self._cutoff(state, older_than)
        return await self.queue.list(state, connection, limit, None, cutoff)

    async def page(
        self,
        state: str | None = None,
        connection: str | None = None,
        older_than: float | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[MailItem]:
        """A page of `list` (keyset on the queue id, oldest first) and the total."""
        cutoff = self._cutoff(state, older_than)
        start = after(cursor, PAGE_TAG)
        if start is not None and not isinstance(start, str):
            raise UsageError("cursor: not a cursor of the queue list; pass its own next_cursor")
        found = await self.queue.list(state, connection, check_limit(limit) + 1, start, cutoff)
        total = await self.queue.count(state, connection, cutoff)
        return page_from(found, lambda m: m.id, limit, total, PAGE_TAG)

    def _cutoff(self, state: str | None, older_than: float | None) -> float | None:
        """The latest receipt time `older_than` keeps (None: any); checks `state` too."""
        if state is not None and state not in STATES:
            raise UsageError(f"state: {state!r} is not one of {', '.join(STATES)}")
        return None if older_than is None else self.clock.now() - older_than

    async def get(self, queue_id: str, with_text: bool = False) -> MailItem:
        item = await self.queue.get(queue_id, with_text)
        if item is None:
            raise _not_found([queue_id])
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
        return await self.change("hold", [queue_id], actor, reason)

    async def release(self, queue_id: str, actor: str, reason: str = "") -> int:
        return await self.change("release", [queue_id], actor, reason)

    async def retry(self, queue_id: str, actor: str, reason: str = "") -> int:
        return await self.change("retry", [queue_id], actor, reason)

    async def delete(self, queue_id: str, actor: str, reason: str = "") -> int:
        return await self.change("delete", [queue_id], actor, reason)

    async def change(
        self, verb: Verb, queue_ids: Sequence[str], actor: str, reason: str = ""
    ) -> int:
        """`verb` on each of `queue_ids` (duplicates once), each audited with its count;
        the total. Every id is found and every state checked before the first change."""
        ids = list(dict.fromkeys(queue_ids))
        if not ids:
            raise UsageError("queue ids: none given; name the messages to change")
        found = [await self.queue.get(i, False) for i in ids]
        missing = [i for i, item in zip(ids, found, strict=True) if item is None]
        if missing:
            raise _not_found(missing)
        misfits = [m for item in found if item is not None and (m := _misfit(verb, item))]
        if misfits:
            raise ConflictError("; ".join(misfits))
        total = 0
        for queue_id, item in zip(ids, found, strict=True):
            count = await self._edit(verb, queue_id, reason)
            total += await self._audited(actor, verb, queue_id, reason, count)
            if count and item is not None:
                self._tell(verb, queue_id, item.connection, actor, reason, count)
        return total

    def _tell(
        self, verb: str, queue_id: str, connection: str, actor: str, reason: str, count: int
    ) -> None:
        """A change of queued mail, to the journal (retries are no such change)."""
        what = _CHANGES.get(verb)
        if self.journal is not None and what is not None:
            now = self.clock.now()
            self.journal(QueueChange(now, what, queue_id, connection, actor, reason, count))

    async def _edit(self, verb: Verb, queue_id: str, reason: str) -> int:
        if verb == "hold":
            return await self.queue.hold([queue_id], reason.strip() or OPERATOR_HOLD)
        if verb == "release":
            return await self.queue.release([queue_id], None)
        if verb == "retry":
            return await self.queue.retry([queue_id])
        return await self.queue.delete([queue_id])

    async def retry_all(self, actor: str, reason: str = "") -> int:
        """Make every deferred message due now; how many."""
        count = await self.queue.retry(None)
        return await self._audited(actor, "retry-all", "deferred", reason, count)

    async def release_connection(self, connection: str, actor: str, reason: str = "") -> int:
        """Release all held mail of one connection (even what its suspension holds)."""
        count = await self.queue.release(None, _need(connection))
        await self._audited(actor, "release-all", connection, reason, count)
        if count:
            self._tell("release", "", connection.strip(), actor, reason, count)
        return count

    async def purge_connection(self, connection: str, actor: str, reason: str = "") -> int:
        """Delete all held mail of one connection, without bounces."""
        count = await self.queue.purge_held(_need(connection))
        await self._audited(actor, "purge", connection, reason, count)
        if count:
            self._tell("delete", "", connection.strip(), actor, reason, count)
        return count

    async def _audited(self, actor: str, verb: str, target: str, reason: str, count: int) -> int:
        await self.audit.record(actor, f"queue.{verb}", target, reason, details={"count": count})
        return count


def _not_found(ids: Sequence[str]) -> NotFoundError:
    return NotFoundError(f"queue id not found: {', '.join(ids)} (delivered, deleted or never)")


def _misfit(verb: Verb, item: MailItem) -> str:
    """Why `verb` does not fit `item`'s state, with what does; "" when it fits."""
    if verb == "hold" and item.state == "held":
        return f"queue id {item.id} is held already ({item.hold_reason})"
    if verb == "release" and item.state != "held":
        return f"queue id {item.id} is {item.state}, not held; " + (
            "retry it to make it due now" if item.state == "deferred" else "it is due now"
        )
    if verb == "retry" and item.state != "deferred":
        return f"queue id {item.id} is {item.state}, not deferred; " + (
            "release it instead" if item.state == "held" else "it is due now"
        )
    return ""


def _need(connection: str) -> str:
    if not connection.strip():
        raise UsageError("connection: empty; name the connection whose held mail this is")
    return connection.strip()
