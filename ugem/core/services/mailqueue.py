"""Queued mail as operators manage it: list, show, summarize, hold, release, delete, retry,
bounce, flush, purge.

The one logic of queue management: the admin API and `ugem queue` both go
through `QueueService`. The queue itself is the relay's spools (every
worker's); this service sees them through `MailQueue`, a small protocol the
roof satisfies with an adapter (`ugem.adapters.spool_queue.SpoolQueue`), so the
services do not import the relay. Which messages: a `Criteria`
(`ugem.core.queue_filter`: state, connection, sender, recipient, a recipient's
domain, older than / newer than a duration), one filter for the list, its
count, the summary and the bulk actions; a bad filter is a `UsageError` naming
its field. `page` is a page of the list, keyset on the queue id (the spools' own
order, `ugem.core.paging`), with the total the spools count. `summary` is the
queue's shape by destination domain or origin connection and age
(`ugem.core.queue_shape`), counted by the spools in SQL.

`change` holds, releases, retries, deletes or bounces several messages by id
at once, all or nothing as far as checks go: every id is looked up and every
state checked before the first change, so an unknown id (a `NotFoundError`
naming every unknown one) or an action that does not fit a message's state
(release of mail that is not held: a `ConflictError` saying what fits)
changes nothing; the one-id methods are `change` of one id. Each is audited
with its count (`queue.hold`, `queue.release`, `queue.retry`, `queue.delete`,
`queue.bounce`, target the queue id). `bulk` does the same to every message a
filter selects that the action fits (hold: not held; release: held; retry:
deferred; delete and bounce: any), a page at a time, so a change of a large
queue never holds the spool's writer for long: it needs a filter (or
`everything`, for all queued mail) and a reason, is audited once
(`queue.bulk-<verb>`, target the filter in one line, details its fields and the
count), and with `dry_run` only counts what it would change. `flush` makes
every deferred message due now (`queue.flush`, target `deferred`); a bounce
returns the message to its sender with a DSN (the relay's `returned` DSN,
"deleted by the postmaster: <reason>") and deletes it. `release_connection`
and `purge_connection` act on one connection's held mail (`queue.release-all`,
`queue.purge`, target the connection). A hold without a reason is
`OPERATOR_HOLD`.

Show gives the envelope and the header block; `show_body` also the body,
which is private correspondence: it needs the `operator` role (`BODY_ROLE`;
below it a `ForbiddenError` naming the role) and every read is audited
(`queue.read-body`, target the queue id) before the body is given, so a read
that cannot be audited gives nothing. Errors of the queue itself (the spool's
`SpoolError`) and of the audit log (`StoreError`) pass through. With a
`journal` (the node's `EventBus.publish`, or the CLI's message index), each
message held, released, deleted or returned (by id or by a filter: one
`QueueChange` per message, for the messages selected), and each connection's
mail released or purged at once, is also told to it as a `QueueChange` naming
the actor and the reason, for the mail log (`ugem.core.maillog`).
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
from ugem.core.queue_filter import STATES as STATES  # re-exported
from ugem.core.queue_filter import Criteria, MailFilter
from ugem.core.queue_shape import DEFAULT_TOP, By, QueueShape, check, shape_of
from ugem.core.services.audit import AuditLog
from ugem.core.services.tokens import Role

OPERATOR_HOLD = "held by operator"  # the hold reason when the operator gives none
Verb = Literal["hold", "release", "retry", "delete", "bounce"]  # what `change` and `bulk` do
VERBS: tuple[Verb, ...] = ("hold", "release", "retry", "delete", "bounce")
_CHANGES: dict[str, QueueEvent] = {
    "hold": "held",
    "release": "released",
    "delete": "deleted",
    "bounce": "returned",
}
FITS: dict[Verb, tuple[str, ...]] = {  # the states each action changes
    "hold": ("active", "deferred"),
    "release": ("held",),
    "retry": ("deferred",),
    "delete": STATES,
    "bounce": STATES,
}
BULK_PAGE = 500  # messages changed per round of a bulk action
BODY_ROLE = Role.OPERATOR  # the least role that may read a queued message's body
PAGE_TAG = "queue"  # the cursors of `page`
EVERY = Criteria()  # no filter: every queued message


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
        self, where: MailFilter, limit: int, after: str | None = None
    ) -> builtins.list[MailItem]:
        """What `where` selects, oldest first (by id), without text; only ids after `after`."""
        ...

    async def count(self, where: MailFilter) -> int:
        """How many messages `list` would give without a limit or `after`."""
        ...

    async def shape(
        self, by: By, where: MailFilter, now: float
    ) -> tuple[dict[str, builtins.list[int]], builtins.list[int]]:
        """What `where` selects counted per key and age bucket (`ugem.core.queue_shape`:
        key -> count per bucket), and per bucket."""
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

    async def bounce(self, ids: builtins.list[str], reason: str) -> int:
        """Return each message to its sender with a DSN saying `reason`, and delete it."""
        ...

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
        self.journal = journal  # told of each message held, released, deleted, returned

    async def list(self, criteria: Criteria = EVERY, limit: int = 1000) -> builtins.list[MailItem]:
        """What `criteria` selects, oldest first, at most `limit`."""
        if limit < 1:
            raise UsageError(f"limit: {limit} is not valid; expected 1 or more")
        return await self.queue.list(criteria.at(self.clock.now()), limit)

    async def page(
        self, criteria: Criteria = EVERY, limit: int = DEFAULT_LIMIT, cursor: str | None = None
    ) -> Page[MailItem]:
        """A page of `list` (keyset on the queue id, oldest first) and the total."""
        where = criteria.at(self.clock.now())
        start = after(cursor, PAGE_TAG)
        if start is not None and not isinstance(start, str):
            raise UsageError("cursor: not a cursor of the queue list; pass its own next_cursor")
        found = await self.queue.list(where, check_limit(limit) + 1, start)
        total = await self.queue.count(where)
        return page_from(found, lambda m: m.id, limit, total, PAGE_TAG)

    async def count(self, criteria: Criteria = EVERY) -> int:
        return await self.queue.count(criteria.at(self.clock.now()))

    async def summary(
        self, criteria: Criteria = EVERY, by: str = "destination", top: int = DEFAULT_TOP
    ) -> QueueShape:
        """What `criteria` selects by destination domain (or origin connection) and age:
        the `top` rows with the most messages, the rest summed (`ugem.core.queue_shape`)."""
        kind = check(by, top)
        now = self.clock.now()
        tallies, totals = await self.queue.shape(kind, criteria.at(now), now)
        return shape_of(kind, tallies, totals, top)

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

    async def bounce(self, queue_id: str, actor: str, reason: str = "") -> int:
        return await self.change("bounce", [queue_id], actor, reason)

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
        items = [item for item in found if item is not None]
        misfits = [m for item in items if (m := _misfit(verb, item))]
        if misfits:
            raise ConflictError("; ".join(misfits))
        total = 0
        for item in items:
            count = await self._edit(verb, [item.id], reason)
            total += await self._audited(actor, verb, item.id, reason, count)
            if count:
                self._tell(verb, item.id, item.connection, actor, reason, count)
        return total

    async def bulk(
        self,
        verb: Verb,
        criteria: Criteria,
        actor: str,
        reason: str,
        *,
        everything: bool = False,
        dry_run: bool = False,
    ) -> int:
        """`verb` on every message `criteria` selects that it fits, a page at a time; how
        many (with `dry_run`: how many it would change, changing nothing). Without a
        filter it needs `everything`; it needs a reason, and is audited once."""
        given = criteria.given()
        if not given and not everything:
            raise UsageError(
                "filter: none given; name the messages (state, connection, sender, recipient, "
                "domain, older_than, newer_than), or ask for all of them"
            )
        where = criteria.at(self.clock.now()).within(FITS[verb])
        if dry_run:
            return await self.queue.count(where)
        if not reason.strip():
            raise UsageError(f"reason: empty; say why you {verb} them (kept in the audit log)")
        total, start = 0, None
        while found := await self.queue.list(where, BULK_PAGE, start):
            total += await self._edit(verb, [m.id for m in found], reason)
            for item in found:
                self._tell(verb, item.id, item.connection, actor, reason, 1)
            start = found[-1].id
        details = {"count": total, "filter": given, "all": everything}
        target = criteria.describe()
        await self.audit.record(actor, f"queue.bulk-{verb}", target, reason, details=details)
        return total

    def _tell(
        self, verb: str, queue_id: str, connection: str, actor: str, reason: str, count: int
    ) -> None:
        """A change of queued mail, to the journal (retries are no such change)."""
        what = _CHANGES.get(verb)
        if self.journal is not None and what is not None:
            now = self.clock.now()
            self.journal(QueueChange(now, what, queue_id, connection, actor, reason, count))

    async def _edit(self, verb: Verb, ids: builtins.list[str], reason: str) -> int:
        if verb == "hold":
            return await self.queue.hold(ids, reason.strip() or OPERATOR_HOLD)
        if verb == "release":
            return await self.queue.release(ids, None)
        if verb == "retry":
            return await self.queue.retry(ids)
        if verb == "bounce":
            return await self.queue.bounce(ids, reason.strip())
        return await self.queue.delete(ids)

    async def flush(self, actor: str, reason: str = "") -> int:
        """Make every deferred message due now (Postfix's `postqueue -f`); how many."""
        count = await self.queue.retry(None)
        return await self._audited(actor, "flush", "deferred", reason, count)

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
