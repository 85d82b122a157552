"""The queue's shape, as Postfix's qshape draws it: messages by destination (or origin) and age.

Ages count from when a message was received, in minutes, in buckets whose
edges double as qshape's: 0-5, 5-10, 10-20, 20-40, 40-80, 80-160, 160-320 and
320+ (`AGE_EDGES`). A row is one destination domain (a domain of the
recipients still to deliver: a message to two domains counts in both rows,
once in each however many of its recipients are there) or one origin
connection (`(inbound)` for mail from the internet), with its count per bucket
and its total. `shape_of` keeps the `top` rows with the most messages (ties by
name) and sums the rest into `other`; `total` counts every message the filter
selects once per bucket (so by destination it can be less than the rows' sum).
The spools count (in SQL, `relay.queue.spool_select`); this module only ranks
and sums what they give, in memory in proportion to the rows (domains or
connections), never to the messages. It raises nothing but a `UsageError`
for a `top` or `by` that is not valid.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ugem.core.errors import UsageError

By = Literal["destination", "connection"]
BY: tuple[By, ...] = ("destination", "connection")
AGE_EDGES = (5, 10, 20, 40, 80, 160, 320)  # minutes: a bucket's upper edge (the last: open)
DEFAULT_TOP = 20
MAX_TOP = 1000
INBOUND = "(inbound)"  # the row of mail from the internet, by connection
OTHER = "(other)"  # the rows past the top ones, summed


def bucket_labels(edges: Sequence[int] = AGE_EDGES) -> tuple[str, ...]:
    """`0-5`, `5-10`, ..., `320+`: each bucket's minutes."""
    lows = (0, *edges)
    return (*(f"{lo}-{hi}" for lo, hi in zip(lows, edges, strict=False)), f"{edges[-1]}+")


@dataclass(frozen=True)
class ShapeRow:
    key: str
    counts: tuple[int, ...]  # per bucket, youngest first

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class QueueShape:
    by: By
    buckets: tuple[str, ...]  # the buckets' labels, youngest first
    rows: tuple[ShapeRow, ...]  # the top rows, most messages first
    other: ShapeRow | None  # the rest summed (None: no more rows)
    others: int  # how many rows `other` sums
    total: ShapeRow  # every message selected, per bucket


def check(by: str, top: int) -> By:
    """`by` as a `By`, once `top` is valid too; a `UsageError` naming the bad one."""
    if by not in BY:
        raise UsageError(f"by: {by!r} is not one of {', '.join(BY)}")
    if not 1 <= top <= MAX_TOP:
        raise UsageError(f"top: {top} is not valid; expected 1 to {MAX_TOP}")
    return "destination" if by == "destination" else "connection"


def shape_of(
    by: By, tallies: Mapping[str, Sequence[int]], totals: Sequence[int], top: int
) -> QueueShape:
    """The top `top` rows of `tallies` (key -> count per bucket) and the rest as `other`."""
    width = len(totals)
    rows = [
        ShapeRow(INBOUND if by == "connection" and not k else k, tuple(c))
        for k, c in tallies.items()
    ]
    best = heapq.nsmallest(top, rows, key=lambda r: (-r.total, r.key))
    chosen = {id(r) for r in best}
    rest = [r for r in rows if id(r) not in chosen]
    other = None
    if rest:
        other = ShapeRow(OTHER, tuple(sum(r.counts[i] for r in rest) for i in range(width)))
    labels = bucket_labels()
    return QueueShape(by, labels, tuple(best), other, len(rest), ShapeRow("TOTAL", tuple(totals)))
