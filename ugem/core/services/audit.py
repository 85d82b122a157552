"""The audit log as operators see it: record a change, list entries, verify the chain.

`AuditLog.record` writes who did what to which target, why, and the target
before and after (JSON), through the store, which chains every record to the
one before it by hash (`ugem.core.store.codec.seal`). `list` and `page` read
it newest first, by target, actor, action and a time `window` (`window_of`
reads one as an operator gives it; `page`: keyset
on seq, with the total of the matching records, for which it reads them all).
`verify` reads the whole chain oldest first and reports every record whose
hash does not match its content (edited), whose link does not match the record
before it, or that is missing (a gap in the numbers, or a head that says the
log is longer than it is). It never raises for a broken chain (that is its answer); a store that
cannot be read raises `StoreError`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ugem.core.clock import Clock
from ugem.core.errors import UsageError
from ugem.core.paging import DEFAULT_LIMIT, Page, after, check_limit, page_from
from ugem.core.services.messages import parse_when
from ugem.core.store.base import GENESIS, AuditEntry, AuditRecord, Store
from ugem.core.store.codec import entry_hash

PAGE = 1000  # records read at a time by verify, list and page
Window = tuple[float | None, float | None]  # since (inclusive), until (exclusive); None: open
ANY_TIME: Window = (None, None)
PAGE_TAG = "audit"  # the cursors of `page`
MAX_PROBLEMS = 50  # problems reported by verify (the first ones)


def as_json(value: Any) -> str:
    """Canonical JSON text of `value` ("" for None), as kept in before/after/details."""
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@dataclass(frozen=True)
class Verdict:
    """The result of `verify`: `ok` when the chain is whole."""

    entries: int
    head_seq: int
    head_hash: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def window_of(since: str | None, until: str | None) -> Window:
    """The window of `since` and `until` as an operator gives them (RFC 3339, Unix time or
    a date, Asia/Almaty without a zone; `until` a date: to that day's end), as the message
    search reads them (`ugem.core.services.messages.parse_when`); "" or None is open. A
    `UsageError` names a bad one, or a `since` not before `until`."""
    start = parse_when(since, "since") if since else None
    end = parse_when(until, "until", end_of_day=True) if until else None
    if start is not None and end is not None and start >= end:
        raise UsageError(f"since: {since} is not before until ({until})")
    return start, end


class AuditLog:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def record(
        self,
        actor: str,
        action: str,
        target: str,
        reason: str = "",
        *,
        details: Mapping[str, Any] | None = None,
        before: Any = None,
        after: Any = None,
    ) -> AuditEntry:
        entry = AuditEntry(
            self.clock.now(),
            actor,
            action,
            target,
            reason,
            as_json(details),
            as_json(before),
            as_json(after),
        )
        await self.store.audit(entry)
        return entry

    async def list(
        self,
        target: str | None = None,
        limit: int = 100,
        before: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        *,
        window: Window = ANY_TIME,
    ) -> list[AuditRecord]:
        """Newest first, at most `limit`; `before` pages back (records with a smaller seq);
        only records written within `window` (since, until: Unix times, None for open)."""
        found: list[AuditRecord] = []
        async for record in self._matching(target, actor, action, before, window):
            found.append(record)
            if len(found) >= limit:
                break
        return found

    async def page(
        self,
        target: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
        *,
        window: Window = ANY_TIME,
    ) -> Page[AuditRecord]:
        """A page of `list` (newest first; keyset on seq, the store's own order:
        `ugem.core.paging`) and the total, which reads every matching record."""
        before = after(cursor, PAGE_TAG)
        if before is not None and not isinstance(before, int):
            raise UsageError("cursor: not a cursor of the audit list; pass its own next_cursor")
        found = await self.list(
            target, check_limit(limit) + 1, before, actor, action, window=window
        )
        total = 0
        async for _ in self._matching(target, actor, action, None, window):
            total += 1
        return page_from(found, lambda r: r.seq, limit, total, PAGE_TAG)

    async def _matching(
        self,
        target: str | None,
        actor: str | None,
        action: str | None,
        before: int | None,
        window: Window = ANY_TIME,
    ) -> AsyncIterator[AuditRecord]:
        """Records newest first (seq below `before` if given) of target, actor and action,
        written within `window`."""
        since, until = window
        while found := await self.store.audit_records(target, PAGE, before):
            for r in found:
                if (
                    (actor is None or r.entry.actor == actor)
                    and (action is None or r.entry.action == action)
                    and (since is None or r.entry.ts >= since)
                    and (until is None or r.entry.ts < until)
                ):
                    yield r
            before = found[-1].seq

    async def verify(self) -> Verdict:
        problems: list[str] = []
        prev, expected, offset = GENESIS, 1, 0
        while records := await self.store.audit_chain(offset, PAGE):
            for record in records:
                problems += _check(record, expected, prev)
                prev, expected = record.hash, record.seq + 1
            offset += len(records)
        count = offset
        head_seq, head_hash = await self.store.audit_head()
        if (head_seq, head_hash) != (expected - 1, prev):
            problems.append(
                f"the head names record {head_seq} ({head_hash[:12]}) but the log ends at "
                f"record {expected - 1} ({prev[:12]}): records at the end were deleted or "
                "the head was changed"
            )
        return Verdict(count, head_seq, head_hash, problems[:MAX_PROBLEMS])


def _check(record: AuditRecord, expected: int, prev: str) -> list[str]:
    out = []
    if record.seq != expected:
        out.append(f"record {expected}: missing (the next record is {record.seq})")
    if record.prev != prev:
        out.append(
            f"record {record.seq}: its link does not match the record before it "
            "(a record before it was edited, inserted or deleted)"
        )
    if entry_hash(record.seq, record.prev, record.entry) != record.hash:
        out.append(f"record {record.seq}: its content does not match its hash (edited)")
    return out
