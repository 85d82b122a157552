"""What both stores share: the stored form of a connection and their errors.

A connection is stored as the JSON text of `Connection.to_dict()` (UTF-8, not
escaped, keys sorted), so SQLite and Redis hold the same bytes and any field
added to the model is kept without a schema change. `decode_connection` raises
`StoreError` when stored text is not a valid connection (the store is damaged,
not the caller's input). The conflict errors name the id or the domain and its
owner, the same words whichever store found them.
"""

from __future__ import annotations

import json

from ugem.errors import ConflictError, StoreError, UgemError, UsageError
from ugem.model import Connection


def encode_connection(conn: Connection) -> str:
    return json.dumps(conn.to_dict(), ensure_ascii=False, sort_keys=True)


def decode_connection(text: str | bytes, where: str) -> Connection:
    """The connection stored as `text`; StoreError naming `where` if it is damaged."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise UsageError("connection: not a JSON object")
        return Connection.from_dict(data)
    except (ValueError, UgemError) as exc:
        raise StoreError(f"{where}: the stored connection is damaged: {exc}") from exc


def id_conflict(conn_id: str) -> ConflictError:
    return ConflictError(f"connection {conn_id!r} exists; use another id or change that one")


def domain_conflict(domain: str, owner: str) -> ConflictError:
    return ConflictError(
        f"domain {domain!r} belongs to connection {owner!r}; remove it there first"
    )


def check_limit(limit: int) -> int:
    if limit < 1:
        raise UsageError(f"limit: {limit} is not valid; expected 1 or more")
    return limit
