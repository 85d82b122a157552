"""The gate of a Redis client (ugem.core.store.redis_gate), through the store and the traffic
log, on a real redis-server.

After `close()` every call is refused with StoreError and the server sees no connection
opened again (redis-py would reconnect on demand, and nothing would close that one);
`close()` waits for a call under way, which ends as it would have, and leaves no
connection; a call to a hung server (SIGSTOP) gives up at its timeout and leaves no
socket for the collector (a ResourceWarning is an error here).
"""

from __future__ import annotations

import asyncio
import gc

import pytest

from tests.support.connections import plain
from tests.support.redis_outage import OwnRedis
from tests.support.redis_server import RedisServer
from tests.support.waiting import eventually
from ugem.core.errors import StoreError
from ugem.core.store.redis import RedisStore
from ugem.core.store.traffic import RedisTrafficLog


def opened_since(server: RedisServer, before: set[str]) -> list[dict[str, str]]:
    """The server's connections that were not there `before` (ids of CLIENT LIST)."""
    return [c for c in server.clients() if c["id"] not in before]


async def test_a_closed_store_and_log_open_no_connection_again(
    redis_server: RedisServer, redis_url: str
) -> None:
    before = redis_server.client_ids()
    store, log = RedisStore(redis_url), RedisTrafficLog(redis_url)
    await store.add(plain("a.gov.kz"))
    await log.append(["1"])
    await store.close()
    await log.close()
    with pytest.raises(StoreError, match=r"^redis store redis://.*: the client is closed"):
        await store.list()
    with pytest.raises(StoreError, match=r"^redis traffic log .*: read: the client is closed"):
        await log.read("0", wait=0)
    assert opened_since(redis_server, before) == []


async def test_close_waits_for_a_call_under_way_and_leaves_no_connection(
    redis_server: RedisServer, redis_url: str
) -> None:
    before = redis_server.client_ids()
    log, other = RedisTrafficLog(redis_url), RedisTrafficLog(redis_url)
    cursor = await log.tail()
    reading = asyncio.create_task(log.read(cursor, wait=4.0))  # XREAD BLOCK 4000
    await asyncio.sleep(0)  # a yield, not a wait: the read's first step, now under way
    closing = asyncio.create_task(log.close())
    await asyncio.sleep(0)  # the close's first step: it waits for the read
    assert not closing.done()
    with pytest.raises(StoreError, match="closed"):
        await log.tail()
    await other.append(["after"])  # what the read waits for (from its cursor on)
    await closing
    assert reading.result()[1] == ["after"]  # it ended as it would have, not cut off
    await other.close()
    assert opened_since(redis_server, before) == []


async def test_a_call_to_a_hung_redis_gives_up_and_leaves_no_socket(own_redis: OwnRedis) -> None:
    store = RedisStore(own_redis.url, timeout=0.2)
    await store.version()  # connected once before the hang
    own_redis.pause()
    try:
        with pytest.raises(StoreError, match=r"[Tt]imeout"):
            await store.version()  # a command on the open connection, then reconnects
        await store.close()
    finally:
        own_redis.resume()
    gc.collect()  # a socket dropped unclosed is found now ("unclosed socket": an error here)
    await eventually(lambda: own_redis.clients() == [], 10, "every connection gone")
