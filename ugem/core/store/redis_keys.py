"""Where the project's data lives in Redis: one hash-tagged prefix, and the move off the old one.

Every key of the registry store (`ugem.core.store.redis`) and of the traffic log
(`ugem.core.store.traffic`) starts with `PREFIX`, `{ugem}:`. The braces are a
Redis Cluster hash tag: every key hashes to the slot of "ugem", so a Lua script
or a MULTI that touches several of them stays legal on a cluster (it would get
CROSSSLOT otherwise). The tests run against a one-node cluster to hold this.

Releases before this one wrote `ugem:`. `move_legacy_keys(client)` renames every
`ugem:*` key to `{ugem}:*` (SCAN, then one RENAMENX a key: atomic, so two nodes
starting at once move each key exactly once; "no such key" means another moved
it first). A key whose new name is already taken is left where it is, counted
in `Moved.kept` and logged at WARNING (`store_keys_kept`). Each client runs the
move once, before its first call (`RedisGate(prepare=...)`); a Redis error
fails that call as any other (StoreError) and the move is tried again on the
next. Upgrade every node before any of them writes again (stop all, upgrade,
start): an old node would keep writing `ugem:*`, where no new node reads.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from ugem.core.log import event

PREFIX = "{ugem}:"
LEGACY_PREFIX = "ugem:"
SCAN_COUNT = 1000
NO_SUCH_KEY = "no such key"  # Redis's error for a RENAMENX of a key that is gone

log = logging.getLogger("ugem.store")


@dataclass(frozen=True)
class Moved:
    moved: int  # renamed to the new prefix
    kept: int  # left under the old one: the new name was taken


async def move_legacy_keys(
    client: aioredis.Redis, legacy: str = LEGACY_PREFIX, prefix: str = PREFIX
) -> Moved:
    """Rename every `legacy*` key to `prefix*`; RedisError when Redis fails."""
    moved = kept = 0
    async for key in client.scan_iter(match=f"{legacy}*", count=SCAN_COUNT):
        name = key.decode() if isinstance(key, bytes) else str(key)
        try:
            done = await client.renamenx(name, prefix + name[len(legacy) :])
        except ResponseError as exc:
            if NO_SUCH_KEY not in str(exc):
                raise
            continue  # another node moved it first
        moved, kept = (moved + 1, kept) if done else (moved, kept + 1)
    if moved:
        event(log, "store_keys_moved", moved=moved, old_prefix=legacy, prefix=prefix)
    if kept:
        event(log, "store_keys_kept", logging.WARNING, kept=kept, old_prefix=legacy,
              prefix=prefix, why="the new name is taken; the old key is left, unread")  # fmt: skip
    return Moved(moved, kept)


def legacy_move(prefix: str) -> Callable[[aioredis.Redis], Awaitable[Moved]] | None:
    """What a client of keys under `prefix` runs first: the move, for the default prefix only
    (a prefix of one's own has no old layout to come from)."""
    return move_legacy_keys if prefix == PREFIX else None
