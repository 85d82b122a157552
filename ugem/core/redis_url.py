"""The Redis store's URL forms, parsed: one server, or a master found through Sentinel.

Two forms name a Redis store (`[store] url`):

- `redis://[:password@]host:port/db`: one server (redis-py's own form);
- `redis+sentinel://[:password@]host:port,host:port,.../mastername/db`: the
  master that the Sentinel processes at those addresses monitor under
  `mastername` (the db may be left out: 0). The password is the master's;
  the sentinels are asked without one.

`is_redis_url(url)` says whether a URL is one of them (by its scheme);
`parse_sentinel_url(url)` gives a `SentinelUrl` or raises `ConfigError`
naming `store.url`, the URL without its password and what is wrong (no
host, a bad port, no master name, a db that is not a number).
`check_redis_url(url)` validates either form the same way. This module
imports only the standard library and the error tree: `ugem.core.config`
validates with it and `ugem.core.store.redis` connects with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ugem.core.errors import ConfigError

REDIS_SCHEME = "redis://"
SENTINEL_SCHEME = "redis+sentinel://"
SENTINEL_FORM = "redis+sentinel://host:port,host:port/mastername/db"
ALLOWED = f"expected redis://host:port/db or {SENTINEL_FORM}"


@dataclass(frozen=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int
    username: str | None = None
    password: str | None = None


def is_redis_url(url: str) -> bool:
    """Whether `url` names a Redis store (either form), by its scheme alone."""
    return url.startswith((REDIS_SCHEME, SENTINEL_SCHEME))


def check_redis_url(url: str) -> None:
    """Raise `ConfigError` (key `store.url`) unless `url` is a valid Redis store URL."""
    if url.startswith(SENTINEL_SCHEME):
        parse_sentinel_url(url)
    elif not (url.startswith(REDIS_SCHEME) and _plain_ok(url)):
        raise ConfigError("store.url", hide_password(url), ALLOWED)


def parse_sentinel_url(url: str) -> SentinelUrl:
    """The sentinels, master name, db and credentials of a `redis+sentinel://` URL."""
    if not url.startswith(SENTINEL_SCHEME):
        raise _bad(url, "not a redis+sentinel:// URL")
    netloc, _, path = url[len(SENTINEL_SCHEME) :].partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return SentinelUrl(
        sentinels=tuple(_address(url, item) for item in _hosts(url, hosts)),
        master=_master(url, path),
        db=_db(url, path),
        username=unquote(user) or None,
        password=unquote(password) or None,
    )


def hide_password(url: str) -> str:
    """`url` with its password (between the scheme's `//` and `@`) shown as `***`."""
    scheme, sep, rest = url.partition("//")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.partition(":")[0]
    return f"{scheme}{sep}{user}:***@{hosts}{slash}{path}"


def _hosts(url: str, hosts: str) -> list[str]:
    items = [item.strip() for item in hosts.split(",")]
    if not hosts.strip() or not all(items):
        raise _bad(url, "no sentinel host:port (or an empty one between commas)")
    return items


def _address(url: str, item: str) -> tuple[str, int]:
    host, colon, port = item.rpartition(":")
    host = host.strip("[]")
    if not colon or not host:
        raise _bad(url, f"sentinel {item!r} is not host:port")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise _bad(url, f"sentinel {item!r} has a bad port")
    return host, int(port)


def _master(url: str, path: str) -> str:
    name = unquote(path.split("/")[0]) if path else ""
    if not name.strip():
        raise _bad(url, "no master name (the path's first part)")
    return name


def _db(url: str, path: str) -> int:
    parts = path.split("/")
    if len(parts) > 2 and any(parts[2:]):
        raise _bad(url, "more than mastername/db in the path")
    db = parts[1] if len(parts) > 1 else ""
    if db and not db.isdigit():
        raise _bad(url, f"db {db!r} is not a number")
    return int(db or 0)


def _plain_ok(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    db = parts.path.strip("/")
    return bool(parts.hostname) and (not db or db.isdigit())


def _bad(url: str, why: str) -> ConfigError:
    return ConfigError("store.url", hide_password(url), f"{ALLOWED}: {why}")
