"""Keyset paging of the operators' lists: a page, its total, an opaque cursor to the next.

Every list the services give a page of has a stable order on a key (a string,
a number, or a tuple of them: a connection's id, an audit record's seq, ...).
A cursor is the key of the last item of a page, tagged with the list's name,
as URL-safe base64 of JSON: the next page is the items past that key in the
list's order, so items added or removed meanwhile neither repeat nor shift
another item out of the next page (keyset, not offset). `Page.total` counts
every item the filters match now.

`page_of(items, key, limit, cursor, tag)` pages a list already in memory, in
its order (ascending keys, or descending with `descending=True`): the
connections, applications, tokens, overrides, incidents, complaints and
standings, which their stores give whole. `after(cursor, tag)` reads a cursor
for a store that pages itself (the queue by id, the audit log by seq) and
`page_from(rest, ...)` makes the page of what it gave past it. A cursor
that is not one of this list's (damaged, or another list's) is a
`UsageError` naming `cursor`; a `limit` out of 1..`MAX_LIMIT` too.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from ugem.core.errors import UsageError

T = TypeVar("T")
Key = str | int | float | tuple[str | int | float, ...]
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int  # every item the filters match
    next_cursor: str | None  # None: this is the last page


def cursor_of(tag: str, key: Key) -> str:
    """The opaque cursor after the item of `key` in list `tag`."""
    text = json.dumps([tag, list(key) if isinstance(key, tuple) else key], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def after(cursor: str | None, tag: str) -> Key | None:
    """The key a cursor of list `tag` points after; None for no cursor."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found, key = json.loads(text)
    except (binascii.Error, ValueError, TypeError):
        detail = f"cursor: {cursor[:40]!r} is not a cursor; pass next_cursor as given"
        raise UsageError(detail) from None
    if found != tag or not _is_key(key):
        raise UsageError(f"cursor: not a cursor of the {tag} list; pass its own next_cursor")
    return tuple(key) if isinstance(key, list) else key


def _is_key(key: object) -> bool:
    atoms = key if isinstance(key, list) else [key]
    return all(isinstance(a, str | int | float) and not isinstance(a, bool) for a in atoms)


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"limit: {limit} is not valid; expected 1 to {MAX_LIMIT}")
    return limit


def page_of(
    items: Sequence[T],
    key: Callable[[T], Key],
    limit: int,
    cursor: str | None,
    tag: str,
    descending: bool = False,
) -> Page[T]:
    """The page of `items` (in their list order) after `cursor`, at most `limit`."""
    check_limit(limit)
    start = after(cursor, tag)
    rest = list(items) if start is None else [i for i in items if _past(key(i), start, descending)]
    return page_from(rest, key, limit, len(items), tag)


def page_from(
    rest: Sequence[T], key: Callable[[T], Key], limit: int, total: int, tag: str
) -> Page[T]:
    """A page of the first `limit` of `rest` (the items past the cursor, in order; one more
    than `limit` is enough to know whether there is a next page)."""
    shown = list(rest[:limit])
    more = len(rest) > limit and shown
    return Page(shown, total, cursor_of(tag, key(shown[-1])) if more else None)


def _past(found: Key, start: Key, descending: bool) -> bool:
    try:
        return found < start if descending else found > start  # type: ignore[operator]
    except TypeError:
        raise UsageError("cursor: not a cursor of this list; pass its own next_cursor") from None
