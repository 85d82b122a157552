"""What both stores share: the stored form of a connection and their errors.

A connection is stored as the JSON text of `Connection.to_dict()` (UTF-8, not
escaped, keys sorted), so SQLite and Redis hold the same bytes and any field
added to the model is kept without a schema change. `decode_connection` raises
`StoreError` when stored text is not a valid connection (the store is damaged,
not the caller's input). The conflict errors name the id or the domain and its
owner, the same words whichever store found them. `seal` computes an audit
record's hash the same way for both stores and for `ugem audit verify`;
`AuditLogReader` gives both stores `audit_log` over their `audit_records`.
The incident errors (an unknown number, reopening a closed incident) read the
same from both stores too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from ugem.core.errors import ConflictError, NotFoundError, StoreError, UgemError, UsageError
from ugem.core.model import Connection
from ugem.core.store.base import AuditEntry, AuditRecord


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


def check_limit(limit: int, name: str = "limit") -> int:
    if limit < 1:
        raise UsageError(f"{name}: {limit} is not valid; expected 1 or more")
    return limit


def entry_hash(seq: int, prev: str, entry: AuditEntry) -> str:
    """sha256 (hex) of the canonical JSON of the entry with its seq and prev hash."""
    body = {"seq": seq, "prev": prev, **asdict(entry)}
    text = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def seal(seq: int, prev: str, entry: AuditEntry) -> AuditRecord:
    """The record that follows the one hashed `prev`, as number `seq`."""
    return AuditRecord(seq, prev, entry_hash(seq, prev, entry), entry)


def encode_record(record: AuditRecord) -> str:
    return json.dumps(
        {"seq": record.seq, "prev": record.prev, "hash": record.hash, **asdict(record.entry)},
        ensure_ascii=False,
        sort_keys=True,
    )


def decode_record(text: str | bytes, where: str) -> AuditRecord:
    """The record stored as `text`; StoreError naming `where` if it cannot be read."""
    try:
        data = json.loads(text)
        seq, prev, digest = int(data.pop("seq")), str(data.pop("prev")), str(data.pop("hash"))
        return AuditRecord(seq, prev, digest, AuditEntry(**data))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StoreError(f"{where}: an audit record is damaged: {exc}") from exc


def doc_conflict(kind: str, doc_id: str) -> ConflictError:
    return ConflictError(f"{kind} {doc_id!r} exists; choose another name")


def no_incident(incident_id: int) -> NotFoundError:
    return NotFoundError(f"no incident {incident_id}")


def incident_final(incident_id: int) -> ConflictError:
    return ConflictError(f"incident {incident_id} is closed; a closed incident stays closed")


class AuditLogReader:
    """`audit_log` (the entries without their seals) for a store with `audit_records`."""

    async def audit_records(
        self, target: str | None = None, limit: int = 100, before: int | None = None
    ) -> list[AuditRecord]:
        raise NotImplementedError

    async def audit_log(self, target: str | None = None, limit: int = 100) -> list[AuditEntry]:
        return [r.entry for r in await self.audit_records(target, limit)]
