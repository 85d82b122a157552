"""The audit log as operators see it: record a change, list entries, verify the chain.

`AuditLog.record` writes who did what to which target, why, and the target
before and after (JSON), through the store, which chains every record to the
one before it by hash (`ugem.core.store.codec.seal`). `list` and `page` read
it newest first (`page`: keyset on seq, with the total of the matching records,
for which it reads them all). `verify` reads the whole
chain oldest first and reports every record whose hash does not match its
content (edited), whose link does not match the record before it, or that is
missing (a gap in the numbers, or a head that says the log is longer than it
is). It never raises for a broken chain (that is its answer); a store that
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
from ugem.core.store.base import GENESIS, AuditEntry, AuditRecord, Store
from ugem.core.store.codec import entry_hash

PAGE = 1000  # records read at a time by verify, list and page
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
    ) -> list[AuditRecord]:
        """Newest first, at most `limit`; `before` pages back (records with a smaller seq)."""
        found: list[AuditRecord] = []
        async for record in self._matching(target, actor, action, before):
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
    ) -> Page[AuditRecord]:
        """A page of `list` (newest first; keyset on seq, the store's own order:
        `ugem.core.paging`) and the total, which reads every matching record."""
        before = after(cursor, PAGE_TAG)
        if before is not None and not isinstance(before, int):
            raise UsageError("cursor: not a cursor of the audit list; pass its own next_cursor")
        found = await self.list(target, check_limit(limit) + 1, before, actor, action)
        total = 0
        async for _ in self._matching(target, actor, action, None):
            total += 1
        return page_from(found, lambda r: r.seq, limit, total, PAGE_TAG)

    async def _matching(
        self, target: str | None, actor: str | None, action: str | None, before: int | None
    ) -> AsyncIterator[AuditRecord]:
        """Records newest first (seq below `before` if given) of target, actor and action."""
        while found := await self.store.audit_records(target, PAGE, before):
            for r in found:
                if (actor is None or r.entry.actor == actor) and (
                    action is None or r.entry.action == action
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
