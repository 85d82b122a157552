"""The registry's backing stores: one interface (`Store`), two implementations.

`open_store(url)` picks the implementation from the URL: `sqlite:///path` (the
embedded default, one file in the data dir; `sqlite:///var/r.db` is relative,
`sqlite:////srv/r.db` absolute), `redis://host:port/db` (state shared by
several nodes) or `redis+sentinel://host:port,host:port/mastername/db` (the
same, on the master a Sentinel group names: `ugem.core.redis_url`). Both
pass the same contract tests. Any other URL, or a malformed Redis one, is a
`ConfigError` naming `store.url` and the value (its password hidden); a
store that cannot be opened raises `StoreError`.
"""

from __future__ import annotations

from ugem.core.errors import ConfigError
from ugem.core.redis_url import check_redis_url, is_redis_url
from ugem.core.store.base import AuditEntry, Store

__all__ = ["AuditEntry", "Store", "open_store"]

SQLITE_PREFIX = "sqlite:///"
_ALLOWED = (
    "expected sqlite:///path or redis://host:port/db, or "
    "redis+sentinel://host:port,host:port/mastername/db"
)


def open_store(url: str) -> Store:
    """The store named by `url`, opened (SQLite) or ready to connect on first use (Redis)."""
    if url.startswith(SQLITE_PREFIX) and url[len(SQLITE_PREFIX) :].strip():
        from ugem.core.store.sqlite import SqliteStore  # imported when used

        return SqliteStore(url[len(SQLITE_PREFIX) :])
    if is_redis_url(url):
        check_redis_url(url)
        from ugem.core.store.redis import RedisStore  # imported when used

        return RedisStore(url)
    raise ConfigError("store.url", url, _ALLOWED)
