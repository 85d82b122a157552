"""Never an empty or older store for the truth: which stores a node holding a copy refuses."""

from __future__ import annotations

import pytest

from ugem.core.store_trust import Held, Seen, refusal

COPY = Held("g1", 57, 3)


def test_a_node_with_nothing_to_lose_takes_any_store() -> None:
    assert refusal(None, Seen(None, 0)) is None
    assert refusal(Held("g1", 9, 0), Seen("g2", 1, 0)) is None


@pytest.mark.parametrize(
    ("seen", "words"),
    [
        (Seen(None, 0), "no generation: it is empty or lost its data"),
        (Seen(None, 80, 3), "no generation"),  # connections written back by hand: still none
        (Seen("g2", 90), "another generation, g2"),
        (Seen("g1", 56), "older: version 56"),
        (Seen("g1", 60, 0), "no connection at version 60 and this node's copy holds 3"),
    ],
)
def test_empty_other_or_older_stores_are_refused(seen: Seen, words: str) -> None:
    why = refusal(COPY, seen)
    assert why is not None and words in why
    assert "generation g1 version 57" in why or "holds 3" in why  # what the node holds


@pytest.mark.parametrize(
    "seen", [Seen("g1", 57), Seen("g1", 57, 3), Seen("g1", 80), Seen("g1", 80, 1)]
)
def test_the_same_store_or_a_newer_one_is_taken(seen: Seen) -> None:
    assert refusal(COPY, seen) is None
