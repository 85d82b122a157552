"""How `ugem queue` prints queued mail: the mailq table, one message, the queue's shape.

`as_dict` and `row` are a message as JSON and as a line of the `list` table;
`print_message` is `show`'s envelope and header block; `shape_dict` and
`print_shape` are `summary` as JSON and as qshape's table (a TOTAL line, the
top rows, the rest summed as `(other)`, a column per age bucket in minutes).
Pure printing: no I/O but stdout, nothing raised.
"""

from __future__ import annotations

from typing import Any

from ugem.cli import print_table
from ugem.commands.connection import when
from ugem.core.queue_shape import QueueShape, ShapeRow
from ugem.core.services.mailqueue import MailItem

LIST_COLUMNS = ["id", "state", "size", "age", "sender", "rcpts", "attempts", "last_error"]
ERROR_WIDTH = 60  # characters of the last error shown in the table


def age(seconds: float) -> str:
    left = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if left >= size:
            return f"{left // size}{unit}"
    return f"{left}s"


def as_dict(msg: MailItem, now: float) -> dict[str, Any]:
    return {
        "id": msg.id,
        "state": msg.state,
        "hold_reason": msg.hold_reason,
        "size": msg.size,
        "received_at": msg.received_at,
        "age_seconds": round(now - msg.received_at, 3),
        "connection": msg.connection,
        "client_ip": msg.client_ip,
        "sender": msg.sender,
        "rcpts": list(msg.rcpts),
        "original_rcpts": list(msg.original_rcpts),
        "attempts": msg.attempts,
        "next_attempt": msg.next_attempt,
        "last_error": msg.last_error,
    }


def row(msg: MailItem, now: float) -> dict[str, Any]:
    error = msg.last_error.replace("\n", " ")
    if len(error) > ERROR_WIDTH:
        error = error[: ERROR_WIDTH - 3] + "..."
    return {
        "id": msg.id,
        "state": msg.state,
        "size": msg.size,
        "age": age(now - msg.received_at),
        "sender": msg.sender or "<>",
        "rcpts": len(msg.rcpts),
        "attempts": msg.attempts,
        "last_error": error,
    }


def print_message(msg: MailItem, now: float, headers: str) -> None:
    state = f"{msg.state} ({msg.hold_reason})" if msg.hold_reason else msg.state
    lines = [
        ("id", msg.id),
        ("state", state),
        ("connection", msg.connection or "(inbound)"),
        ("client", msg.client_ip),
        ("received", f"{when(msg.received_at)} ({age(now - msg.received_at)} ago)"),
        ("size", str(msg.size)),
        ("sender", f"<{msg.sender}>"),
        ("recipients", ", ".join(msg.rcpts)),
        ("original recipients", ", ".join(msg.original_rcpts)),
        ("attempts", str(msg.attempts)),
        ("next attempt", when(msg.next_attempt) if msg.next_attempt else "now"),
        ("last error", msg.last_error or "-"),
    ]
    for name, value in lines:
        print(f"{name + ':':21}{value}")
    print("\n" + headers.rstrip("\r\n").replace("\r\n", "\n"))


def _shape_row(row: ShapeRow) -> dict[str, Any]:
    return {"key": row.key, "total": row.total, "counts": list(row.counts)}


def shape_dict(shape: QueueShape) -> dict[str, Any]:
    """`summary --json`, as the admin API answers it: the buckets' labels (minutes),
    the total, the top rows, the rest (`other`, summing `other_rows` rows)."""
    return {
        "by": shape.by,
        "buckets": list(shape.buckets),
        "total": _shape_row(shape.total),
        "rows": [_shape_row(r) for r in shape.rows],
        "other": None if shape.other is None else _shape_row(shape.other),
        "other_rows": shape.others,
    }


def print_shape(shape: QueueShape) -> None:
    """qshape's table: a column per age bucket (minutes), TOTAL first, `(other)` last."""
    key = shape.by
    columns = [key, "total", *shape.buckets]
    rows = [shape.total, *shape.rows, *([shape.other] if shape.other else [])]
    table = [
        {key: r.key, "total": r.total} | dict(zip(shape.buckets, r.counts, strict=True))
        for r in rows
    ]
    print_table(table, columns)
    if shape.other is not None:
        print(f"(other: {shape.others} more {key}s; ages in minutes since received)")
    else:
        print("(ages in minutes since received)")
