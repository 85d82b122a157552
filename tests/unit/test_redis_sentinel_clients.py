"""The sentinel clients behind a `redis+sentinel://` store: each kept, each closed.

Against a real Sentinel group (`tests.support.sentinel`) with a plain redis-server
named first in the URL: it names no master (SENTINEL is no command of a plain
server), so every master discovery passes over it to the next sentinel and moves
that one to the front. Several discoveries at once (a new client's connections
made together) made redis-py's `Sentinel` drop the plain server's client from its
list, and closing the store then left that client's connections open for the
collector ("unclosed socket", a ResourceWarning) in whichever later test it ran.
Here the list still holds every client once, and closing leaves no connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.support.redis_server import RedisServer
from tests.support.sentinel import MASTER, SentinelGroup, running_group
from ugem.core.store.redis import RedisStore, redis_client
from ugem.core.store.traffic import RedisTrafficLog

AT_ONCE = 8  # commands of a new client at once: as many connections, as many discoveries


@pytest.fixture(scope="module")
def sentinel_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """One group for the module (its start takes 5 s): no test here fails it over."""
    with running_group(tmp_path_factory.mktemp("sentinel")) as group:
        yield group


def url_first(server: RedisServer, group: SentinelGroup) -> str:
    hosts = [f"127.0.0.1:{server.port}", *(f"127.0.0.1:{port}" for port in group.ports)]
    return f"redis+sentinel://{','.join(hosts)}/{MASTER}/0"


async def test_discoveries_at_once_keep_every_sentinel_and_close_leaves_none_open(
    sentinel_group: SentinelGroup, redis_server: RedisServer
) -> None:
    before = redis_server.client_ids()
    client = redis_client(url_first(redis_server, sentinel_group), socket_timeout=5.0)
    manager = client.connection_pool.sentinel_manager  # type: ignore[attr-defined]
    made = list(manager.sentinels)
    assert await asyncio.gather(*(client.get("x") for _ in range(AT_ONCE))) == [None] * AT_ONCE
    assert sorted(map(id, manager.sentinels)) == sorted(map(id, made))  # none lost, none twice
    assert redis_server.client_ids() - before  # every discovery asked the plain server first
    await client.aclose()
    assert [c for c in redis_server.clients() if c["id"] not in before] == []


async def test_the_store_and_the_traffic_log_close_every_sentinel_client(
    sentinel_group: SentinelGroup, redis_server: RedisServer
) -> None:
    before = redis_server.client_ids()
    url = url_first(redis_server, sentinel_group)
    store = RedisStore(url)
    assert await asyncio.gather(*(store.version() for _ in range(AT_ONCE))) == [0] * AT_ONCE
    await store.close()
    log = RedisTrafficLog(url)
    await asyncio.gather(*(log.append([str(n)]) for n in range(AT_ONCE)))
    await log.close()
    assert [c for c in redis_server.clients() if c["id"] not in before] == []
