"""`ugem.core.paging`: keyset pages of a list in memory, and cursors that belong to one list."""

from __future__ import annotations

import pytest

from ugem.core.errors import UsageError
from ugem.core.paging import after, cursor_of, page_of


def pages(items: list[int], limit: int, descending: bool = False) -> list[list[int]]:
    found, cursor = [], None
    while True:
        page = page_of(items, lambda i: i, limit, cursor, "numbers", descending)
        assert page.total == len(items)
        found.append(page.items)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def test_pages_cover_the_list_once_in_its_order() -> None:
    assert pages([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert pages([5, 4, 3, 2, 1], 2, descending=True) == [[5, 4], [3, 2], [1]]
    assert pages([1, 2], 2) == [[1, 2]]
    assert pages([], 3) == [[]]


def test_a_cursor_is_a_place_in_the_order_not_an_offset() -> None:
    first = page_of([10, 20, 30, 40], lambda i: i, 2, None, "numbers")
    grown = [5, 10, 15, 20, 25, 30, 40]  # added before and after the cursor meanwhile
    second = page_of(grown, lambda i: i, 2, first.next_cursor, "numbers")
    assert (second.items, second.total) == ([25, 30], 7)


def test_keys_of_several_parts_come_back_as_they_went() -> None:
    cursor = cursor_of("overrides", (1_796_641_445.25, "ovr-1"))
    assert after(cursor, "overrides") == (1_796_641_445.25, "ovr-1")
    assert after(None, "overrides") is None


@pytest.mark.parametrize("cursor", ["not-a-cursor", cursor_of("tokens", "admin"), "W1s"])
def test_a_cursor_not_of_this_list_names_the_cursor(cursor: str) -> None:
    with pytest.raises(UsageError, match=r"^cursor: "):
        page_of([1, 2], lambda i: i, 1, cursor, "numbers")


@pytest.mark.parametrize("limit", [0, 1001])
def test_a_limit_out_of_bounds_names_the_limit(limit: int) -> None:
    with pytest.raises(UsageError, match=r"^limit: "):
        page_of([1], lambda i: i, limit, None, "numbers")
