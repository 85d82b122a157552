"""The Redis store URL forms: `redis+sentinel://` parsed, a malformed one a ConfigError.

No server is needed: a `redis+sentinel://` URL is parsed into its sentinels,
master name, db and credentials; a malformed one (no host, a bad port, no
master name, a bad db) is a ConfigError naming `store.url`, in
`ugem.core.redis_url`, in the config loader and in `open_store`, never
showing the password. The clients `redis_client` builds connect lazily, so
making one needs no Redis either.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ugem.core.config import load_config
from ugem.core.errors import ConfigError
from ugem.core.redis_url import SentinelUrl, check_redis_url, hide_password, parse_sentinel_url
from ugem.core.store import open_store
from ugem.core.store.redis import RedisStore, redact, redis_client
from ugem.core.store.traffic import RedisTrafficLog, open_traffic_log

GOOD = "redis+sentinel://10.0.0.1:26379,10.0.0.2:26380,sentinel-c:26379/ugem/3"

BAD = {
    "redis+sentinel:///ugem/0": "no sentinel host",
    "redis+sentinel://h1:26379,,h2:26379/ugem/0": "no sentinel host",
    "redis+sentinel://h1/ugem/0": "is not host:port",
    "redis+sentinel://h1:port/ugem/0": "bad port",
    "redis+sentinel://h1:70000/ugem/0": "bad port",
    "redis+sentinel://h1:26379": "no master name",
    "redis+sentinel://h1:26379/": "no master name",
    "redis+sentinel://h1:26379//0": "no master name",
    "redis+sentinel://h1:26379/ugem/zero": "is not a number",
    "redis+sentinel://h1:26379/ugem/0/extra": "more than mastername/db",
}


def test_a_sentinel_url_gives_its_sentinels_master_and_db() -> None:
    assert parse_sentinel_url(GOOD) == SentinelUrl(
        sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26380), ("sentinel-c", 26379)),
        master="ugem",
        db=3,
    )


def test_the_db_defaults_to_0_and_credentials_are_the_masters() -> None:
    found = parse_sentinel_url("redis+sentinel://app:s%40cret@h1:26379/ugem")
    assert (found.sentinels, found.master, found.db) == ((("h1", 26379),), "ugem", 0)
    assert (found.username, found.password) == ("app", "s@cret")
    assert parse_sentinel_url("redis+sentinel://:pw@h1:1/m/").password == "pw"


@pytest.mark.parametrize(("url", "why"), sorted(BAD.items()))
def test_a_malformed_sentinel_url_is_a_config_error_naming_store_url(url: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_sentinel_url(url)
    assert caught.value.key == "store.url"
    assert why in caught.value.allowed
    with pytest.raises(ConfigError, match=r"store\.url"):
        open_store(url)


def test_the_password_is_never_in_the_error_or_the_name() -> None:
    url = "redis+sentinel://:hunter2@h1:99999/ugem/0"
    with pytest.raises(ConfigError) as caught:
        check_redis_url(url)
    assert "hunter2" not in str(caught.value)
    assert hide_password(url) == "redis+sentinel://:***@h1:99999/ugem/0"
    assert redact("redis+sentinel://u:pw@h1:1,h2:2/m/0") == "redis+sentinel://u:***@h1:1,h2:2/m/0"


def test_plain_redis_urls_are_checked_as_before() -> None:
    check_redis_url("redis://127.0.0.1:6379/0")
    for url in ("redis://:6379/0", "redis://h:port/0", "redis://h:1/db"):
        with pytest.raises(ConfigError, match=r"store\.url"):
            check_redis_url(url)


def test_the_config_takes_a_sentinel_url_and_refuses_a_malformed_one(tmp_path: Path) -> None:
    path = tmp_path / "ugem.toml"
    path.write_text(f'[store]\nurl = "{GOOD}"\n', encoding="utf-8")
    config = load_config(path, env={})
    assert config.store_url == GOOD
    assert config.shares_traffic  # a Redis store: the traffic log is shared
    path.write_text('[store]\nurl = "redis+sentinel://h1:26379/ugem/x"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert caught.value.key == "store.url" and "is not a number" in caught.value.allowed


async def test_store_and_traffic_log_connect_through_the_sentinels() -> None:
    client = redis_client(GOOD, socket_timeout=1.0)
    try:
        pool: object = client.connection_pool
        assert type(pool).__name__ == "SentinelConnectionPool"
        assert client.connection_pool.connection_kwargs["db"] == 3
    finally:
        await client.aclose()
    store = open_store(GOOD)
    assert isinstance(store, RedisStore)
    await store.close()
    log = open_traffic_log(GOOD)
    assert isinstance(log, RedisTrafficLog)
    await log.close()
