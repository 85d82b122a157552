"""The registry's backing stores: one interface (`Store`), two implementations.

`open_store(url)` picks the implementation from the URL: `sqlite:///path` (the
embedded default, one file in the data dir; `sqlite:///var/r.db` is relative,
`sqlite:////srv/r.db` absolute) or `redis://host:port/db` (state shared by
several nodes). Both pass the same contract tests. Any other URL is a
`ConfigError` naming `store.url` and the value; a store that cannot be opened
raises `StoreError`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ugem.core.errors import ConfigError
from ugem.core.store.base import AuditEntry, Store

__all__ = ["AuditEntry", "Store", "open_store"]

SQLITE_PREFIX = "sqlite:///"
_ALLOWED = "expected sqlite:///path or redis://host:port/db"


def open_store(url: str) -> Store:
    """The store named by `url`, opened (SQLite) or ready to connect on first use (Redis)."""
    if url.startswith(SQLITE_PREFIX) and url[len(SQLITE_PREFIX) :].strip():
        from ugem.core.store.sqlite import SqliteStore  # imported when used

        return SqliteStore(url[len(SQLITE_PREFIX) :])
    if url.startswith("redis://") and _redis_url_ok(url):
        from ugem.core.store.redis import RedisStore  # imported when used

        return RedisStore(url)
    raise ConfigError("store.url", url, _ALLOWED)


def _redis_url_ok(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    db = parts.path.strip("/")
    return bool(parts.hostname) and (not db or db.isdigit())
