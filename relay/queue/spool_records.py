"""The spool's records: a queued message as the columns of one row, and back.

A record is a head (id, state, next_attempt, connection, hold_reason, the JSON
`envelope` of the other fields of the message, and `data_crc`, the CRC-32 of the
text), the CRC-32 of that head (`crc`) and the text (`data`). Encoding takes a
snapshot of the message on the caller's thread; nothing here touches the disk.

Promise: a record whose checksums match and whose fields decode is the message
as it was written. How it fails: `_fault` never raises, it says why a row is not
a sound record (a checksum that does not match, a field that cannot be decoded),
for `open` to quarantine it; reads, which do not verify checksums again (`open`
did), get `SpoolCorruptError` from `_decoded` for a row that cannot be decoded."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from typing import Any, NamedTuple

from relay.queue.message import QueuedMessage, QueueState
from ugem.core.errors import SpoolCorruptError

# The fields kept as JSON in `envelope`; the others are columns (data is a column too).
_ENVELOPE = (
    *("sender", "rcpts", "original_rcpts", "size"),
    *("client_ip", "received_at", "attempts", "last_error"),
)


class _Head(NamedTuple):
    """A row without its text; `crc()` covers these fields (`data_crc` covers the text)."""

    id: str
    state: str
    next_attempt: float
    connection: str
    hold_reason: str
    envelope: str  # JSON of the _ENVELOPE fields
    data_crc: int

    def crc(self) -> int:
        return zlib.crc32(json.dumps(list(self), separators=(",", ":")).encode())


def _head_of(msg: QueuedMessage) -> _Head:
    """A snapshot of the message's envelope, taken on the caller's thread (data_crc 0)."""
    fields = {k: getattr(msg, k) for k in _ENVELOPE}
    envelope = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    state, next_attempt = str(msg.state), float(msg.next_attempt)
    return _Head(msg.id, state, next_attempt, msg.connection, msg.hold_reason, envelope, 0)


def _decode(head: Sequence[Any], data: bytes | None) -> QueuedMessage:
    """A QueuedMessage from the head columns; ValueError/KeyError/TypeError if malformed."""
    msg_id, state, next_attempt, connection, hold_reason, envelope = head[:6]
    env = json.loads(envelope)
    if not all(isinstance(v, str) for v in (msg_id, connection, hold_reason)):
        raise TypeError("id, connection and hold_reason must be text")
    return QueuedMessage(
        id=msg_id,
        sender=str(env["sender"]),
        rcpts=[str(r) for r in env["rcpts"]],
        data=data,
        size=int(env["size"]),
        connection=connection,
        client_ip=str(env["client_ip"]),
        received_at=float(env["received_at"]),
        state=QueueState(state),
        attempts=int(env["attempts"]),
        next_attempt=float(next_attempt),
        last_error=str(env["last_error"]),
        hold_reason=hold_reason,
        original_rcpts=[str(r) for r in env["original_rcpts"]],
    )


def _fault(row: Sequence[Any]) -> str | None:
    """Why a full row (`spool_sql._ROW` columns) is not a sound record, or None if it is."""
    try:
        _decode(row, None)
        head = _Head(*row[:7])
        if not isinstance(row[8], bytes) or zlib.crc32(row[8]) != head.data_crc:
            return "message text fails its checksum"
        if head.crc() != row[7]:
            return "envelope fails its checksum"
    except (ValueError, KeyError, TypeError) as exc:
        return f"record cannot be decoded: {exc}"
    return None


def _decoded(row: Sequence[Any], data: bytes | None) -> QueuedMessage:
    try:
        return _decode(row, data)
    except (ValueError, KeyError, TypeError) as exc:
        raise SpoolCorruptError(f"queue id {row[0]!r} cannot be decoded: {exc}") from exc
