"""What an operator's filter and the queue's shape mean in the spool's SQL.

`where_of(filter, after)` is the WHERE clause (over `messages AS m`, every
column qualified) and its arguments for a `ugem.core.queue_filter.MailFilter`:
states, connection, sender, a recipient or a recipient's domain (the JSON
array `rcpts` of the envelope, through `json_each`), and the time received
(`received_at` of the envelope). Addresses and domains compare under SQLite's
`lower()` on both sides; a domain is what follows an address's last `@`, as
`relay.tls.domain_of` takes it (the whole address when it has none).
`shape_sql` and `totals_sql` count the selected messages per key (a recipient's
domain, or the origin connection) and age bucket, and per bucket, all in one
statement each: SQLite groups them (spilling to its temporary files when
large), so a reader holds only the groups, never the messages. Pure text; the
statements run on the spool's reader (`Spool.shape`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ugem.core.queue_filter import MailFilter

RECEIVED = "json_extract(m.envelope, '$.received_at')"
SENDER = "json_extract(m.envelope, '$.sender')"
RCPTS = "json_each(m.envelope, '$.rcpts')"
# A subquery with a LIMIT is not flattened into its aggregate (SQLite's rule), so `age`
# is worked out once a row, not once per WHEN of the bucket's CASE: twice as fast.
_ONCE = "LIMIT -1"


def domain_sql(address: str) -> str:
    """The SQL of an address's domain, lower-cased: what follows its last '@'."""
    return f"lower(substr({address}, length(rtrim({address}, replace({address}, '@', ''))) + 1))"


def _address(expr: str, wanted: str) -> tuple[str, tuple[Any, ...]]:
    """`expr` is the address `wanted` (any case), or at its domain for "@domain"."""
    if wanted.startswith("@"):
        return f"(instr({expr}, '@') > 0 AND {domain_sql(expr)} = lower(?))", (wanted[1:],)
    return f"lower({expr}) = lower(?)", (wanted,)


def where_of(found: MailFilter, after: str | None = None) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause over `messages AS m` for `found` (and ids after `after`)."""
    clauses, args = ["1"], list[Any]()
    if found.states is not None:
        clauses.append(
            f"m.state IN ({', '.join('?' * len(found.states))})" if found.states else "0"
        )
        args += found.states
    for clause, value in (
        ("m.connection = ?", found.connection),
        (f"{RECEIVED} <= ?", found.received_by),
        (f"{RECEIVED} > ?", found.received_after),
        ("m.id > ?", after),
    ):
        if value is not None:
            clauses.append(clause)
            args.append(value)
    if found.sender is not None:
        clause, more = _address(SENDER, found.sender) if found.sender else (f"{SENDER} = ''", ())
        clauses.append(clause)
        args += more
    if found.recipient is not None:
        clause, more = _address("r.value", found.recipient)
        clauses.append(f"EXISTS (SELECT 1 FROM {RCPTS} AS r WHERE {clause})")  # noqa: S608
        args += more
    if found.domain is not None:
        of_domain = f"{domain_sql('r.value')} = ?"
        clauses.append(f"EXISTS (SELECT 1 FROM {RCPTS} AS r WHERE {of_domain})")  # noqa: S608
        args.append(found.domain)
    return " AND ".join(clauses), tuple(args)


def _bucket(edges: int) -> str:
    """The age bucket (0 .. edges) of the column `age`, given the edges' parameters."""
    whens = " ".join(f"WHEN age < ? THEN {i}" for i in range(edges))
    return f"CASE {whens} ELSE {edges} END"


def shape_sql(by: str, edges: Sequence[float], clause: str) -> str:
    """(key, bucket, messages) for each key and bucket: parameters edges, now, the clause's.
    `by` "destination": a recipient's domain (each message once per domain); else the
    origin connection."""
    if by == "destination":
        key, source, count = domain_sql("r.value"), f"messages AS m, {RCPTS} AS r", "DISTINCT id"
    else:
        key, source, count = "m.connection", "messages AS m", "*"
    rows = (
        f"SELECT m.id AS id, {key} AS key, ? - {RECEIVED} AS age "  # noqa: S608 - fixed text
        f"FROM {source} WHERE {clause} {_ONCE}"
    )
    return (
        f"SELECT key, {_bucket(len(edges))} AS bucket, count({count}) "  # noqa: S608 - no input
        f"FROM ({rows}) GROUP BY key, bucket"
    )


def totals_sql(edges: Sequence[float], clause: str) -> str:
    """(bucket, messages) for each bucket: parameters edges, now, the clause's."""
    rows = f"SELECT ? - {RECEIVED} AS age FROM messages AS m WHERE {clause} {_ONCE}"  # noqa: S608
    return f"SELECT {_bucket(len(edges))} AS bucket, count(*) FROM ({rows}) GROUP BY bucket"  # noqa: S608
