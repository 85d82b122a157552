"""The store URLs a contract runs against: an SQLite file and a real private Redis.

`store_url` is parametrised: "sqlite" gives `sqlite:///<tmp>/not-yet/registry.db`
(its directory does not exist yet, so opening must make it), "redis" the URL
of the session's private redis-server, emptied before the test
(`tests.support.redis_server`). A test that asks for `store_url` runs once
with each.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'not-yet' / 'registry.db'}"
    url: str = request.getfixturevalue("redis_url")
    return url
