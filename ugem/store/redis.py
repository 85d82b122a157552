"""The shared registry store: Redis, for several nodes that share one registry.

Keys live under a prefix (`ugem:` by default): `<p>conn` is a hash of
connection id -> JSON text (see `ugem.store.codec`), `<p>domain` a hash of
domain -> owning id, `<p>version` a counter, `<p>audit` a stream of every
audit entry and `<p>audit:<target>` a stream per target, so the log of one
connection is read without a scan. Streams are append-only and their ids give
the order. Every write is atomic together with its `INCR` of the version: the
connection writes are Lua scripts that check the id and domain uniqueness,
write, and bump in one step; an audit entry is one MULTI/EXEC.

`version()` is one GET; every call gives up after `timeout` seconds (5 by
default) rather than hang an SMTP session. Redis errors (connection refused,
timeouts, a script error) are raised as `StoreError` naming the server (its
URL without the password); conflicts as `ConflictError`; a damaged stored
connection as `StoreError`; an invalid URL as `ConfigError`.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ugem.errors import ConfigError, StoreError
from ugem.model import Connection
from ugem.store.base import AuditEntry
from ugem.store.codec import (
    check_limit,
    decode_connection,
    domain_conflict,
    encode_connection,
    id_conflict,
)

T = TypeVar("T")

TIMEOUT = 5.0  # seconds: a hung Redis is a StoreError (451 to clients), never a hung session

# KEYS: conn hash, domain hash, version.  ARGV: mode ("add"|"put"), id, json, domains...
# Returns {"id", id} or {"domain", domain, owner} on a conflict, else {"ok", version}.
_SAVE = """
local conns, doms, ver = KEYS[1], KEYS[2], KEYS[3]
local mode, id = ARGV[1], ARGV[2]
local old = redis.call('HGET', conns, id)
if mode == 'add' and old then return {'id', id} end
for i = 4, #ARGV do
  local owner = redis.call('HGET', doms, ARGV[i])
  if owner and owner ~= id then return {'domain', ARGV[i], owner} end
end
if old then
  for _, d in ipairs(cjson.decode(old)['domains']) do
    if redis.call('HGET', doms, d) == id then redis.call('HDEL', doms, d) end
  end
end
redis.call('HSET', conns, id, ARGV[3])
for i = 4, #ARGV do redis.call('HSET', doms, ARGV[i], id) end
return {'ok', redis.call('INCR', ver)}
"""

# KEYS: conn hash, domain hash, version.  ARGV: id.  Returns 1 if deleted, 0 if absent.
_DELETE = """
local conns, doms, ver, id = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local old = redis.call('HGET', conns, id)
if not old then return 0 end
for _, d in ipairs(cjson.decode(old)['domains']) do
  if redis.call('HGET', doms, d) == id then redis.call('HDEL', doms, d) end
end
redis.call('HDEL', conns, id)
redis.call('INCR', ver)
return 1
"""


class RedisStore:
    def __init__(self, url: str, prefix: str = "ugem:", timeout: float = TIMEOUT) -> None:
        self.url = url
        self.prefix = prefix
        try:
            self.name = _redact(url)
            self._redis = aioredis.Redis.from_url(
                url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        except ValueError as exc:
            allowed = f"expected redis://host:port/db: {exc}"
            raise ConfigError("store.url", url.partition("@")[2] or url, allowed) from exc
        self._conns, self._domains = f"{prefix}conn", f"{prefix}domain"
        self._version, self._audit = f"{prefix}version", f"{prefix}audit"
        self._save = self._redis.register_script(_SAVE)
        self._delete = self._redis.register_script(_DELETE)

    async def _call(self, pending: Awaitable[T]) -> T:
        try:
            return await pending
        except RedisError as exc:
            raise StoreError(f"redis store {self.name}: {exc}") from exc

    async def _write(self, mode: str, conn: Connection) -> None:
        keys = [self._conns, self._domains, self._version]
        args = [mode, conn.id, encode_connection(conn), *conn.domains]
        reply: list[Any] = await self._call(self._save(keys=keys, args=args))
        if reply[0] == "id":
            raise id_conflict(reply[1])
        if reply[0] == "domain":
            raise domain_conflict(reply[1], reply[2])

    async def add(self, conn: Connection) -> None:
        await self._write("add", conn)

    async def put(self, conn: Connection) -> None:
        await self._write("put", conn)

    async def get(self, conn_id: str) -> Connection | None:
        data = await self._call(self._redis.hget(self._conns, conn_id))
        return None if data is None else decode_connection(data, self._where(conn_id))

    async def list(self) -> builtins.list[Connection]:
        found = await self._call(self._redis.hgetall(self._conns))
        rows = {_text(ident): data for ident, data in found.items()}
        return [decode_connection(rows[ident], self._where(ident)) for ident in sorted(rows)]

    async def delete(self, conn_id: str) -> bool:
        keys = [self._conns, self._domains, self._version]
        gone: int = await self._call(self._delete(keys=keys, args=[conn_id]))
        return bool(gone)

    async def version(self) -> int:
        value = await self._call(self._redis.get(self._version))
        return int(value) if value is not None else 0

    async def audit(self, entry: AuditEntry) -> None:
        fields: dict[Any, Any] = {k: str(v) for k, v in entry.to_dict().items()}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self._audit, fields)
            pipe.xadd(f"{self._audit}:{entry.target}", fields)
            pipe.incr(self._version)
            await self._call(pipe.execute())

    async def audit_log(
        self, target: str | None = None, limit: int = 100
    ) -> builtins.list[AuditEntry]:
        key = self._audit if target is None else f"{self._audit}:{target}"
        rows = await self._call(self._redis.xrevrange(key, count=check_limit(limit)))
        return [_entry(fields) for _id, fields in rows or () if fields]

    async def close(self) -> None:
        await self._call(self._redis.aclose())

    def _where(self, conn_id: str) -> str:
        return f"redis store {self.name}, connection {conn_id!r}"


def _redact(url: str) -> str:
    """`url` without its password, fit for messages and logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entry(raw: dict[bytes | str, bytes | str]) -> AuditEntry:
    fields = {_text(k): _text(v) for k, v in raw.items()}
    return AuditEntry(
        ts=float(fields["ts"]),
        actor=fields["actor"],
        action=fields["action"],
        target=fields["target"],
        reason=fields.get("reason", ""),
        details=fields.get("details", ""),
    )
