"""The hash-tagged key prefix and the move off the old one (ugem.core.store.redis_keys), on a
real redis-server of the test's own (a plain server: the old layout, whose keys hash to many
slots, could only ever have lived on one).

A store and a traffic log written by a release that used `ugem:` are read whole by this one:
registry, generation and version, the audit chain, incidents, a journal, documents, the
traffic stream and a claim that has not expired; nothing is left under the old prefix. Nodes
that start at once move each key exactly once; a key whose new name is taken is left and
counted; a move that fails with Redis down fails the call (StoreError) and is done by the next.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis

from tests.support.connections import plain
from tests.support.redis_outage import OwnRedis
from ugem.core.errors import StoreError
from ugem.core.store.base import AuditEntry
from ugem.core.store.redis import RedisStore
from ugem.core.store.redis_keys import LEGACY_PREFIX, PREFIX
from ugem.core.store.traffic import RedisTrafficLog


@dataclass
class Everything:
    """All a store and a traffic log can be asked, to compare before and after the move."""

    conns: object
    generation: object
    chain: object
    incidents: object
    journal: object
    docs: object
    traffic: object


async def read_all(store: RedisStore, log: RedisTrafficLog) -> Everything:
    return Everything(
        await store.list(),
        await store.generation(),
        await store.audit_chain(),
        await store.incident_list(),
        await store.journal_list("maillog"),
        await store.doc_list("application"),
        await log.read("0", wait=0),
    )


async def write_old_layout(url: str) -> Everything:
    """What a release before the hash tag left in Redis, read back as it saw it."""
    store, log = RedisStore(url, prefix=LEGACY_PREFIX), RedisTrafficLog(url, prefix=LEGACY_PREFIX)
    try:
        await store.init_generation("gen-old")
        await store.add(plain("edu.gov.kz", "192.0.2.1"))
        await store.add(plain("mf.gov.kz", "192.0.2.2"))
        await store.audit(AuditEntry(1.0, "cli:root", "connection.add", "edu.gov.kz"))
        await store.audit(AuditEntry(2.0, "detector", "connection.suspend", "mf.gov.kz"))
        await store.incident_open("mf.gov.kz", '{"why": "burst"}')
        await store.journal_append("maillog", "one", 10)
        await store.doc_add("application", "A-1", '{"org": "x"}')
        await log.append(['{"t": 1}', '{"t": 2}'])
        assert await log.claim("verdict:mf.gov.kz", 3600)
        return await read_all(store, log)
    finally:
        await store.close()
        await log.close()


@pytest.fixture
async def upgraded(own_redis: OwnRedis) -> AsyncIterator[tuple[RedisStore, RedisTrafficLog]]:
    store, log = RedisStore(own_redis.url), RedisTrafficLog(own_redis.url)
    yield store, log
    await store.close()
    await log.close()


def keys(url: str) -> list[str]:
    with redis.Redis.from_url(url, decode_responses=True) as client:
        return sorted(client.keys("*"))


async def test_what_the_old_release_wrote_is_read_whole_after_the_move(
    own_redis: OwnRedis, upgraded: tuple[RedisStore, RedisTrafficLog]
) -> None:
    before = await write_old_layout(own_redis.url)
    store, log = upgraded
    assert await read_all(store, log) == before
    assert before.conns and before.chain and before.incidents and before.journal
    assert not await log.claim("verdict:mf.gov.kz", 3600), "the claim moved with its expiry"
    assert all(key.startswith(PREFIX) for key in keys(own_redis.url)), keys(own_redis.url)


async def test_nodes_starting_at_once_move_each_key_once(
    own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    before = await write_old_layout(own_redis.url)
    old_keys = keys(own_redis.url)
    stores = [RedisStore(own_redis.url) for _ in range(5)]
    with caplog.at_level(logging.INFO, "ugem.store"):
        seen = await asyncio.gather(*(s.list() for s in stores))
    for store in stores:
        await store.close()
    assert seen == [before.conns] * 5
    moves = [r.fields for r in caplog.records if getattr(r, "event", "") == "store_keys_moved"]  # type: ignore[attr-defined]
    assert sum(m["moved"] for m in moves) == len(old_keys)
    assert keys(own_redis.url) == sorted(PREFIX + k[len(LEGACY_PREFIX) :] for k in old_keys)


async def test_a_key_whose_new_name_is_taken_is_left_and_counted(
    own_redis: OwnRedis,
    upgraded: tuple[RedisStore, RedisTrafficLog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with redis.Redis.from_url(own_redis.url) as client:
        client.set(f"{LEGACY_PREFIX}version", 5)
        client.set(f"{PREFIX}version", 9)
    store, _ = upgraded
    with caplog.at_level(logging.INFO, "ugem.store"):
        assert await store.version() == 9
    kept = [r for r in caplog.records if getattr(r, "event", "") == "store_keys_kept"]
    assert [(r.levelno, r.fields["kept"]) for r in kept] == [(logging.WARNING, 1)]  # type: ignore[attr-defined]
    assert keys(own_redis.url) == sorted([f"{PREFIX}version", f"{LEGACY_PREFIX}version"])


async def test_a_move_cut_by_an_outage_is_done_by_the_next_call(own_redis: OwnRedis) -> None:
    before = await write_old_layout(own_redis.url)
    store = RedisStore(own_redis.url, timeout=0.5)
    try:
        own_redis.kill()
        with pytest.raises(StoreError):
            await store.list()
        own_redis.restart()
        assert await store.list() == before.conns
    finally:
        await store.close()
    assert not [k for k in keys(own_redis.url) if k.startswith(LEGACY_PREFIX)]
