"""One shape for every list of the admin API: a page of items, their total, the next cursor.

`PageOut[X]` is `{"items": [...], "total": N, "next_cursor": "..." | null}`
(`ugem.core.paging`: keyset paging, a stable order, an opaque cursor);
`Limit` and `Cursor` are the query parameters every list takes (`limit` 1 to
`MAX_LIMIT`, `DEFAULT_LIMIT` by default; a `cursor` that is not the list's
own is 422 naming `cursor`). `page_out(page, out)` turns a service's `Page` into
a `PageOut` through the item's output model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from ugem.core.paging import DEFAULT_LIMIT, MAX_LIMIT, Page

T = TypeVar("T")
X = TypeVar("X")

Limit = Annotated[
    int,
    Query(ge=1, le=MAX_LIMIT, description=f"items on a page (1 to {MAX_LIMIT})"),
]
Cursor = Annotated[
    str | None,
    Query(
        max_length=1000,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="a page's next_cursor, to get the page after it (opaque); absent: the first",
    ),
]
__all__ = ["DEFAULT_LIMIT", "Cursor", "Limit", "PageOut", "page_out"]


class PageOut(BaseModel, Generic[T]):
    items: list[T] = Field(description="this page's items, in the list's order")
    total: int = Field(description="every item the filters match now, on all pages")
    next_cursor: str | None = Field(
        description="pass it as ?cursor= for the next page; null: this page is the last"
    )


def page_out(page: Page[X], out: Callable[[X], T]) -> PageOut[T]:
    items = [out(item) for item in page.items]
    return PageOut[T](items=items, total=page.total, next_cursor=page.next_cursor)
