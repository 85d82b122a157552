"""The shared registry store: Redis, for several nodes that share one registry.

Keys live under a prefix (`{ugem}:` by default: one Redis Cluster hash tag for
every key, and the keys of releases that used `ugem:` are moved to it before the
first call: `ugem.core.store.redis_keys`): `<p>conn` is a hash of
connection id -> JSON text (see `ugem.core.store.codec`), `<p>domain` a hash of
domain -> owning id, `<p>version` a counter, `<p>auditlog` a list of every
audit record (JSON text; record n at index n-1), `<p>audithead` a hash with
the chain's head (seq, hash) and `<p>auditlog:<target>` a list of the seq
numbers of one target, so the log of one connection is read without a scan.
`<p>doc:<kind>` is a hash of document id -> JSON text. `<p>incident` is a
hash of incident number -> JSON of the record (`<p>incident:seq` numbers
them, `<p>incident:open` maps a connection to its incident that is not
closed); opening and updating one are Lua scripts, so the rule "one incident
not closed per connection" and the rev check hold across nodes. Listing
incidents reads the whole hash (they are few). A journal is a list
`<p>journal:<kind>` of "<number> <JSON text>" entries, oldest first, numbered
by the counter `<p>journal:<kind>:seq`; appending (INCR, RPUSH, LTRIM to the
cap) and reading a page are Lua scripts, so the numbers in the list stay
consecutive and a page is read as one state. `<p>generation` is the
store's generation id (one key; `generation()` reads it with the version in
one round trip; `restore_registry` writes a copy's connections, their
domains, the generation and the version in one Lua script). `server_config`
reads the server's own settings (CONFIG GET, for
`ugem.core.store.persistence`): None when the server refuses the command (a
managed service), StoreError when it cannot be reached. Every write is atomic
together with its `INCR` of the version: the connection writes are Lua
scripts that check the id and domain uniqueness, write, and bump in one step;
an audit record is one WATCH/MULTI/EXEC on the head (retried when another
writer moved it first), so the chain has no fork and no gap.

`version()` is one GET; every call gives up after `timeout` seconds (5 by
default) rather than hang (the SMTP path waits much less: the registry's
watch, `ugem.core.registry_watch`, bounds its wait by `[store]
relay_timeout`). Redis errors (connection refused, timeouts, a script error)
are raised as `StoreError` naming the server (its URL without the password);
conflicts as `ConflictError`; a damaged stored connection as `StoreError`; an
invalid URL as `ConfigError`. Every call goes through the store's
`ugem.core.store.redis_gate.RedisGate`: `close()` waits for the calls under way,
and a call after it is refused (`StoreError`, "the client is closed") instead of
opening a connection that nothing would close.

`redis_client(url, ...)` makes every Redis client of the project (this store
and the shared traffic log, `ugem.core.store.traffic`): for `redis://` redis-py's
`from_url`; for `redis+sentinel://host:port,.../mastername/db` (parsed by
`ugem.core.redis_url`) a client of `redis.asyncio.sentinel.Sentinel(...).master_for`,
which asks the sentinels where the master is on every new connection, so after a
failover the next command goes to the promoted replica (until then, and while
no sentinel names a master that is up, commands fail as any unreachable Redis:
`StoreError`, and the registry's copy serves). Closing it closes the sentinel
connections too, every one of them (`_Sentinels`: redis-py's master discovery can
drop a sentinel from its own list when two run at once, and would then never close
it). Every Lua script and transaction here touches keys of one prefix, declared,
and the prefix is a hash tag, so they all hash to one slot as Redis Cluster needs
(the tests' Redis is a one-node cluster, which refuses anything else).
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ResponseError, WatchError

from ugem.core.errors import ConfigError, StoreError
from ugem.core.model import Connection
from ugem.core.redis_url import SENTINEL_SCHEME, hide_password, parse_sentinel_url
from ugem.core.store.base import GENESIS, INCIDENT_CLOSED, AuditEntry, AuditRecord, IncidentRecord
from ugem.core.store.codec import (
    AuditLogReader,
    check_limit,
    decode_connection,
    decode_record,
    doc_conflict,
    domain_conflict,
    encode_connection,
    encode_record,
    id_conflict,
    incident_final,
    no_incident,
    seal,
)
from ugem.core.store.redis_gate import RedisGate
from ugem.core.store.redis_keys import PREFIX, legacy_move

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


# KEYS: conn hash, domain hash, version, generation.  ARGV: generation, lowest version, then
# per connection: id, json, number of domains, the domains.  Returns {"domain", domain,
# owner} when a domain belongs to a connection not restored (nothing written), else
# {"ok", version}.
_RESTORE = """
local conns, doms, ver, gen = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local items, ids, i = {}, {}, 3
while i <= #ARGV do
  local item = {id = ARGV[i], json = ARGV[i + 1], domains = {}}
  for j = 1, tonumber(ARGV[i + 2]) do item.domains[j] = ARGV[i + 2 + j] end
  items[#items + 1] = item
  ids[item.id] = true
  i = i + 3 + #item.domains
end
for _, item in ipairs(items) do
  for _, d in ipairs(item.domains) do
    local owner = redis.call('HGET', doms, d)
    if owner and not ids[owner] then return {'domain', d, owner} end
  end
end
for _, item in ipairs(items) do
  local old = redis.call('HGET', conns, item.id)
  if old then
    for _, d in ipairs(cjson.decode(old)['domains']) do
      if redis.call('HGET', doms, d) == item.id then redis.call('HDEL', doms, d) end
    end
  end
end
for _, item in ipairs(items) do
  redis.call('HSET', conns, item.id, item.json)
  for _, d in ipairs(item.domains) do redis.call('HSET', doms, d, item.id) end
end
redis.call('SET', gen, ARGV[1])
local version = redis.call('INCR', ver)
if version < tonumber(ARGV[2]) then
  version = tonumber(ARGV[2])
  redis.call('SET', ver, version)
end
return {'ok', version}
"""


# KEYS: incident hash, open hash, seq.  ARGV: connection, data.
# Returns {0, record} when the connection has an incident not closed, else {1, record}.
_INCIDENT_OPEN = """
local id = redis.call('HGET', KEYS[2], ARGV[1])
if id then return {0, redis.call('HGET', KEYS[1], id)} end
id = redis.call('INCR', KEYS[3])
local rec = cjson.encode({id = id, connection = ARGV[1], state = 'open', rev = 1, data = ARGV[2]})
redis.call('HSET', KEYS[1], id, rec)
redis.call('HSET', KEYS[2], ARGV[1], id)
return {1, rec}
"""

# KEYS: incident hash, open hash.  ARGV: id, rev, state, data.
# Returns -1 if there is no such incident, -2 to reopen a closed one, 0 on a stale rev, else 1.
_INCIDENT_UPDATE = f"""
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return -1 end
local rec = cjson.decode(old)
if tostring(rec['rev']) ~= ARGV[2] then return 0 end
if rec['state'] == '{INCIDENT_CLOSED}' and ARGV[3] ~= '{INCIDENT_CLOSED}' then return -2 end
rec['rev'] = rec['rev'] + 1
rec['state'] = ARGV[3]
rec['data'] = ARGV[4]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
if ARGV[3] == '{INCIDENT_CLOSED}' and redis.call('HGET', KEYS[2], rec['connection']) == ARGV[1] then
  redis.call('HDEL', KEYS[2], rec['connection'])
end
return 1
"""


# KEYS: journal list, its counter.  ARGV: data, cap.  Returns {number, entries dropped}.
_JOURNAL_APPEND = """
local seq = redis.call('INCR', KEYS[2])
redis.call('RPUSH', KEYS[1], seq .. ' ' .. ARGV[1])
local extra = redis.call('LLEN', KEYS[1]) - tonumber(ARGV[2])
if extra > 0 then redis.call('LTRIM', KEYS[1], extra, -1) else extra = 0 end
return {seq, extra}
"""

# KEYS: journal list, its counter.  ARGV: before (0: none), limit.
# Returns the entries of numbers below `before`, at most `limit` of the newest, oldest first.
_JOURNAL_PAGE = """
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local first = last - redis.call('LLEN', KEYS[1]) + 1
local top = last
local before = tonumber(ARGV[1])
if before > 0 and before - 1 < top then top = before - 1 end
if top < first then return {} end
local low = math.max(first, top - tonumber(ARGV[2]) + 1)
return redis.call('LRANGE', KEYS[1], low - first, top - first)
"""


class RedisStore(AuditLogReader):
    local = False  # across a network: a call may hang (Store.local)

    def change_mark(self) -> None:
        """None: only a round trip would tell (Store.change_mark)."""
        return None

    def __init__(self, url: str, prefix: str = PREFIX, timeout: float = TIMEOUT) -> None:
        self.url = url
        self.prefix = prefix
        try:
            self.name = redact(url)
            client = redis_client(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        except ValueError as exc:
            allowed = f"expected redis://host:port/db: {exc}"
            raise ConfigError("store.url", hide_password(url), allowed) from exc
        self._gate = RedisGate(client, f"redis store {self.name}", legacy_move(prefix))
        self._redis = client  # to build commands on; every call goes through `_call`
        self._conns, self._domains = f"{prefix}conn", f"{prefix}domain"
        self._version, self._audit = f"{prefix}version", f"{prefix}auditlog"
        self._head = f"{prefix}audithead"
        self._generation = f"{prefix}generation"
        self._restore = self._redis.register_script(_RESTORE)
        self._save = self._redis.register_script(_SAVE)
        self._delete = self._redis.register_script(_DELETE)
        self._incidents = f"{prefix}incident"
        self._incident_keys = [self._incidents, f"{prefix}incident:open"]
        self._incident_open = self._redis.register_script(_INCIDENT_OPEN)
        self._incident_update = self._redis.register_script(_INCIDENT_UPDATE)
        self._journal_append = self._redis.register_script(_JOURNAL_APPEND)
        self._journal_page = self._redis.register_script(_JOURNAL_PAGE)

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        """Every call of the client (`call()` makes it): StoreError for a Redis error, or,
        once closed, before `call` is made."""
        return await self._gate.run(call)

    async def _write(self, mode: str, conn: Connection) -> None:
        keys = [self._conns, self._domains, self._version]
        args = [mode, conn.id, encode_connection(conn), *conn.domains]
        reply: list[Any] = await self._call(lambda: self._save(keys=keys, args=args))
        if reply[0] == "id":
            raise id_conflict(reply[1])
        if reply[0] == "domain":
            raise domain_conflict(reply[1], reply[2])

    async def add(self, conn: Connection) -> None:
        await self._write("add", conn)

    async def put(self, conn: Connection) -> None:
        await self._write("put", conn)

    async def get(self, conn_id: str) -> Connection | None:
        data = await self._call(lambda: self._redis.hget(self._conns, conn_id))
        return None if data is None else decode_connection(data, self._where(conn_id))

    async def list(self) -> builtins.list[Connection]:
        found = await self._call(lambda: self._redis.hgetall(self._conns))
        rows = {_text(ident): data for ident, data in found.items()}
        return [decode_connection(rows[ident], self._where(ident)) for ident in sorted(rows)]

    async def delete(self, conn_id: str) -> bool:
        keys = [self._conns, self._domains, self._version]
        gone: int = await self._call(lambda: self._delete(keys=keys, args=[conn_id]))
        return bool(gone)

    async def version(self) -> int:
        value = await self._call(lambda: self._redis.get(self._version))
        return int(value) if value is not None else 0

    async def generation(self) -> tuple[str | None, int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(self._generation)
            pipe.get(self._version)
            generation, version = await self._call(pipe.execute)
        return (None if generation is None else _text(generation)), int(version or 0)

    async def init_generation(self, generation: str) -> str:
        await self._call(lambda: self._redis.set(self._generation, generation, nx=True))
        found = await self._call(lambda: self._redis.get(self._generation))
        return generation if found is None else _text(found)

    async def restore_registry(
        self, generation: str, min_version: int, conns: builtins.list[Connection]
    ) -> int:
        keys = [self._conns, self._domains, self._version, self._generation]
        args: builtins.list[str | int] = [generation, min_version]
        for conn in conns:
            args += [conn.id, encode_connection(conn), len(conn.domains), *conn.domains]
        reply: builtins.list[Any] = await self._call(lambda: self._restore(keys=keys, args=args))
        if reply[0] == "domain":
            raise domain_conflict(reply[1], reply[2])
        return int(reply[1])

    async def server_config(self, *names: str) -> dict[str, str] | None:
        """The server's settings `names` (CONFIG GET); None when it refuses CONFIG."""
        found: dict[str, str] = {}
        for name in names:
            try:
                answer = await self._call(partial(self._redis.config_get, name))
            except StoreError as exc:
                if isinstance(exc.__cause__, ResponseError):  # unknown command, or not
                    return None  # allowed (a managed service)
                raise
            found.update({_text(k or ""): _text(v or "") for k, v in answer.items()})
        return found

    async def audit(self, entry: AuditEntry) -> None:
        await self._call(lambda: self._append(entry))

    async def _append(self, entry: AuditEntry) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(self._head)
                    head = await pipe.hgetall(self._head)  # type: ignore[misc]
                    seq, prev = int(head.get("seq", 0)), _text(head.get("hash", GENESIS))
                    record = seal(seq + 1, prev, entry)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.rpush(self._audit, encode_record(record))
                    pipe.rpush(f"{self._audit}:{entry.target}", str(record.seq))
                    pipe.hset(self._head, mapping={"seq": record.seq, "hash": record.hash})
                    pipe.incr(self._version)
                    await pipe.execute()
                    return
                except WatchError:
                    continue

    async def audit_records(
        self, target: str | None = None, limit: int = 100, before: int | None = None
    ) -> builtins.list[AuditRecord]:
        check_limit(limit)
        head, _ = await self.audit_head()
        last = head if before is None else min(head, before - 1)
        if target is None:
            first = max(1, last - limit + 1)
            seqs = list(range(last, first - 1, -1))
        else:
            index = f"{self._audit}:{target}"
            found = await self._call(lambda: self._redis.lrange(index, 0, -1))  # type: ignore[misc]
            seqs = [s for s in map(int, reversed(found)) if s <= last][:limit]
        return await self._records(seqs)

    async def _records(self, seqs: builtins.list[int]) -> builtins.list[AuditRecord]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for seq in seqs:
                pipe.lindex(self._audit, seq - 1)
            texts = await self._call(pipe.execute)
        return [decode_record(t, self._where_audit()) for t in texts if t is not None]

    async def audit_chain(self, offset: int = 0, limit: int = 1000) -> builtins.list[AuditRecord]:
        check_limit(limit)
        texts = await self._call(
            lambda: self._redis.lrange(self._audit, offset, offset + limit - 1)  # type: ignore[misc]
        )
        return [decode_record(t, self._where_audit()) for t in texts]

    async def audit_head(self) -> tuple[int, str]:
        head = await self._call(lambda: self._redis.hgetall(self._head))  # type: ignore[misc]
        return int(head.get("seq", 0)), str(head.get("hash", GENESIS))

    async def doc_add(self, kind: str, doc_id: str, data: str) -> None:
        added = await self._call(lambda: self._redis.hsetnx(self._doc(kind), doc_id, data))  # type: ignore[misc]
        if not added:
            raise doc_conflict(kind, doc_id)

    async def doc_put(self, kind: str, doc_id: str, data: str) -> None:
        await self._call(lambda: self._redis.hset(self._doc(kind), doc_id, data))  # type: ignore[misc]

    async def doc_get(self, kind: str, doc_id: str) -> str | None:
        data = await self._call(lambda: self._redis.hget(self._doc(kind), doc_id))  # type: ignore[misc]
        return None if data is None else _text(data)

    async def doc_list(self, kind: str) -> builtins.list[tuple[str, str]]:
        found = await self._call(lambda: self._redis.hgetall(self._doc(kind)))  # type: ignore[misc]
        return sorted((_text(k), _text(v)) for k, v in found.items())

    async def incident_open(self, connection: str, data: str) -> tuple[IncidentRecord, bool]:
        keys = [*self._incident_keys, f"{self._incidents}:seq"]
        reply: list[Any] = await self._call(
            lambda: self._incident_open(keys=keys, args=[connection, data])
        )
        return self._incident(reply[1]), bool(reply[0])

    async def incident_update(self, record: IncidentRecord) -> bool:
        args: list[str | int] = [record.id, record.rev, record.state, record.data]
        done: int = await self._call(
            lambda: self._incident_update(keys=self._incident_keys, args=args)
        )
        if done == -1:
            raise no_incident(record.id)
        if done == -2:
            raise incident_final(record.id)
        return done == 1

    async def incident_get(self, incident_id: int) -> IncidentRecord | None:
        text = await self._call(lambda: self._redis.hget(self._incidents, str(incident_id)))  # type: ignore[misc]
        return None if text is None else self._incident(text)

    async def incident_list(
        self, state: str | None = None, connection: str | None = None, limit: int = 100
    ) -> builtins.list[IncidentRecord]:
        check_limit(limit)
        found = await self._call(lambda: self._redis.hvals(self._incidents))  # type: ignore[misc]
        records = sorted(map(self._incident, found), key=lambda r: r.id, reverse=True)
        return [
            r
            for r in records
            if (state is None or r.state == state)
            and (connection is None or r.connection == connection)
        ][:limit]

    def _incident(self, text: str | bytes) -> IncidentRecord:
        try:
            data = json.loads(text)
            return IncidentRecord(
                int(data["id"]), str(data["connection"]), str(data["state"]),
                int(data["rev"]), str(data["data"]),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"redis store {self.name}: an incident is damaged: {exc}") from exc

    async def journal_append(self, kind: str, data: str, cap: int) -> tuple[int, int]:
        args: builtins.list[str | int] = [data, check_limit(cap, "cap")]
        reply: builtins.list[Any] = await self._call(
            lambda: self._journal_append(keys=self._journal(kind), args=args)
        )
        return int(reply[0]), int(reply[1])

    async def journal_list(
        self, kind: str, limit: int = 100, before: int | None = None
    ) -> builtins.list[tuple[int, str]]:
        args = [0 if before is None else max(before, 1), check_limit(limit)]
        keys = self._journal(kind)
        found: builtins.list[str | bytes] = await self._call(
            lambda: self._journal_page(keys=keys, args=args)
        )
        return [self._entry(kind, text) for text in reversed(found)]

    async def journal_size(self, kind: str) -> tuple[int, int]:
        entries, counter = self._journal(kind)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(counter)
            pipe.llen(entries)
            last, kept = await self._call(pipe.execute)
        return int(last or 0), int(kept)

    def _journal(self, kind: str) -> builtins.list[str]:
        return [f"{self.prefix}journal:{kind}", f"{self.prefix}journal:{kind}:seq"]

    def _entry(self, kind: str, text: str | bytes) -> tuple[int, str]:
        number, _, data = _text(text).partition(" ")
        try:
            return int(number), data
        except ValueError as exc:
            raise StoreError(f"redis store {self.name}: journal {kind} is damaged: {exc}") from exc

    def _doc(self, kind: str) -> str:
        return f"{self.prefix}doc:{kind}"

    def _where_audit(self) -> str:
        return f"redis store {self.name}, audit log"

    async def close(self) -> None:
        await self._gate.close()

    def _where(self, conn_id: str) -> str:
        return f"redis store {self.name}, connection {conn_id!r}"


class _Sentinels(Sentinel):
    """redis-py's `Sentinel`, its list of sentinel clients kept whole.

    `discover_master` moves the sentinel that named the master to the front of
    `sentinels` by swapping two places after an await; two discoveries at once (a pool's
    connections connecting together, as after a failover, each passing over a sentinel
    that names no master that is up) can write one client into both places and drop the
    other from the list: that sentinel is asked no more, and `aclose()`, which walks the
    list, never closes its connections (the collector finds them later: "unclosed
    socket"). Here each discovery ends with every client made in the list once, and
    `aclose()` closes every client made.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.made: tuple[aioredis.Redis, ...] = tuple(self.sentinels)

    async def discover_master(self, service_name: str) -> Any:
        try:
            return await super().discover_master(service_name)
        finally:
            self.sentinels[:] = _each_once([*self.sentinels, *self.made])

    async def aclose(self) -> None:
        self.sentinels[:] = self.made
        await super().aclose()


def _each_once(clients: builtins.list[aioredis.Redis]) -> builtins.list[aioredis.Redis]:
    """`clients` in their order, each once (by identity)."""
    kept: builtins.list[aioredis.Redis] = []
    for client in clients:
        if all(client is not other for other in kept):
            kept.append(client)
    return kept


class _SentinelMaster(aioredis.Redis):
    """The master's client from `Sentinel.master_for`; closing it closes the sentinels' too
    (each one, even when closing the master's connections failed)."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            pool = self.connection_pool
            if isinstance(pool, SentinelConnectionPool):
                await pool.sentinel_manager.aclose()


def redis_client(url: str, socket_timeout: float, **options: Any) -> aioredis.Redis:
    """A client (decoding replies) of the Redis that `url` names: one server, or via Sentinel."""
    if not url.startswith(SENTINEL_SCHEME):
        return aioredis.Redis.from_url(
            url, decode_responses=True, socket_timeout=socket_timeout, **options
        )
    where = parse_sentinel_url(url)
    sentinels = _Sentinels(
        list(where.sentinels),
        sentinel_kwargs={
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_timeout,
        },
    )
    master: aioredis.Redis = sentinels.master_for(
        where.master,
        redis_class=_SentinelMaster,
        db=where.db,
        username=where.username,
        password=where.password,
        decode_responses=True,
        socket_timeout=socket_timeout,
        **options,
    )
    return master


def redact(url: str) -> str:
    """`url` without its password, fit for messages and logs."""
    if url.startswith(SENTINEL_SCHEME):
        return hide_password(url)
    parts = urlsplit(url)
    if not parts.password:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
