"""A Redis store's persistence settings, checked at start against real redis-servers: one
WARNING when the append-only file is off or not fsynced every second, INFO otherwise, and
INFO (never a failure) when the server refuses CONFIG."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.support.redis_outage import OwnRedis
from tests.support.redis_server import RedisServer
from ugem.core.store import open_store
from ugem.core.store.persistence import check_persistence, weaknesses


@pytest.mark.parametrize(
    ("settings", "problems"),
    [
        ({"appendonly": "yes", "appendfsync": "everysec", "save": ""}, []),
        ({"appendonly": "yes", "appendfsync": "always", "save": "3600 1"}, []),
        ({"appendonly": "yes", "appendfsync": "no", "save": ""}, ["appendfsync is 'no'"]),
        ({"appendonly": "no", "appendfsync": "everysec", "save": "3600 1"}, ["appendonly is 'no'"]),
        ({}, ["appendonly is '?'"]),
    ],
)
def test_the_rule(settings: dict[str, str], problems: list[str]) -> None:
    assert weaknesses(settings) == problems


async def _logged(url: str, caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    caplog.set_level(logging.INFO, logger="ugem.core.store.persistence")
    store = open_store(url)
    try:
        await check_persistence(store)
    finally:
        await store.close()
    return [(r.levelno, r.getMessage()) for r in caplog.records]


async def test_a_redis_without_the_append_only_file_is_one_warning(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:  # the tests' shared server keeps nothing on disk
    assert await _logged(redis_server.url, caplog) == [(logging.WARNING, "store_persistence_weak")]
    [record] = caplog.records
    assert "appendonly is 'no'" in getattr(record, "fields", {})["problems"]


async def test_a_redis_with_it_fsynced_is_one_info_line(
    own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    assert await _logged(own_redis.url, caplog) == [(logging.INFO, "store_persistence_ok")]


async def test_a_redis_that_refuses_config_is_one_info_line(
    own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:  # as managed services do
    rule = "ACL SETUSER app on >secret ~* &* +@all -config"
    assert own_redis.server.command(*rule.split()) == b"+OK"
    url = f"redis://app:secret@127.0.0.1:{own_redis.port}/0"
    assert await _logged(url, caplog) == [(logging.INFO, "store_persistence_unknown")]


async def test_an_sqlite_store_is_not_asked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert await _logged(f"sqlite:///{tmp_path / 'registry.db'}", caplog) == []
