"""ugem.core.throttle: the cap of a throttled connection and the board the enforcer writes and the
relay reads: a throttled connection is refused only while it is over its cap, until the time
the enforcer said; a lift, or a connection never throttled, refuses nothing."""

from __future__ import annotations

import pytest

from ugem.core.throttle import THROTTLE_FACTOR, THROTTLE_FLOOR, ThrottleBoard, cap

CONN = "akimat.gov.kz"


@pytest.mark.parametrize(
    ("usual", "warm", "expected"),
    [
        (0.0, False, THROTTLE_FLOOR),  # nothing learned yet: the floor
        (400.0, False, THROTTLE_FLOOR),  # a cold baseline's guess is not its usual
        (1.0, True, THROTTLE_FLOOR),  # a quiet connection may still send the floor
        (40.0, True, THROTTLE_FACTOR * 40.0),  # a busy one: a bit more than its usual
    ],
)
def test_the_cap_is_a_bit_above_the_usual_and_never_below_the_floor(
    usual: float, warm: bool, expected: float
) -> None:
    assert cap(usual, warm) == expected


def test_a_throttled_connection_is_refused_only_while_over_its_cap() -> None:
    board = ThrottleBoard()
    assert not board.throttled(CONN) and not board.refuses(CONN, 0.0)
    board.over(CONN, 500.0)  # not throttled: nothing to be over
    assert not board.refuses(CONN, 100.0) and len(board) == 0

    board.throttle(CONN, 20.0)
    assert board.throttled(CONN) and board.cap(CONN) == 20.0 and len(board) == 1
    assert not board.refuses(CONN, 100.0)  # under its cap until told otherwise
    board.over(CONN, 300.0)
    assert board.refuses(CONN, 100.0) and board.refuses(CONN, 299.9)
    assert not board.refuses(CONN, 300.0)  # its window emptied meanwhile: no event needed
    board.over(CONN, 0.0)
    assert not board.refuses(CONN, 100.0)
    assert not board.refuses("other.gov.kz", 100.0)

    board.over(CONN, 300.0)
    assert board.lift(CONN) and not board.lift(CONN)
    assert not board.throttled(CONN) and not board.refuses(CONN, 100.0)
    assert board.cap(CONN) is None and len(board) == 0
