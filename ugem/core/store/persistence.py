"""Whether a Redis store keeps what it is told: its persistence settings, checked at start.

A Redis that restarts without its data is the empty store a node must never
take for the truth (`ugem.core.store_trust`): production needs the append-only
file (`appendonly yes`) synced every second or on every write (`appendfsync
everysec` or `always`). `check_persistence(store)` asks the server (CONFIG GET
appendonly, appendfsync, save) and logs one line: WARNING
`store_persistence_weak` naming what is off and what to set; INFO
`store_persistence_ok`; INFO `store_persistence_unknown` when the server
refuses CONFIG (managed services often do) or cannot be reached (the
registry's watch reports that). `weaknesses(settings)` is the rule alone. A
store that is not Redis (SQLite: a file, fsynced on every commit) is not
checked. Never raises.
"""

from __future__ import annotations

import logging

from ugem.core.errors import StoreError
from ugem.core.log import event
from ugem.core.store.base import Store

log = logging.getLogger(__name__)

SETTINGS = ("appendonly", "appendfsync", "save")
SYNCED = ("everysec", "always")
ADVICE = "set appendonly yes and appendfsync everysec (redis.conf or CONFIG SET + CONFIG REWRITE)"


def weaknesses(settings: dict[str, str]) -> list[str]:
    """What is off in a server's persistence `settings` (empty: nothing)."""
    found = []
    if settings.get("appendonly", "").lower() != "yes":
        found.append(f"appendonly is {settings.get('appendonly', '?')!r}")
    elif settings.get("appendfsync", "").lower() not in SYNCED:
        found.append(f"appendfsync is {settings.get('appendfsync', '?')!r}")
    return found


async def check_persistence(store: Store) -> None:
    """Log what the store's server says of its persistence (Redis only)."""
    from ugem.core.store.redis import RedisStore  # the one kind that can lose its data

    if not isinstance(store, RedisStore):
        return
    try:
        settings = await store.server_config(*SETTINGS)
    except StoreError as exc:
        event(log, "store_persistence_unknown", store=store.name, why=str(exc))
        return
    if settings is None:
        event(log, "store_persistence_unknown", store=store.name, why="CONFIG refused")
        return
    weak = weaknesses(settings)
    seen = " ".join(f"{name}={settings.get(name, '')!r}" for name in SETTINGS)
    if weak:
        event(
            log,
            "store_persistence_weak",
            logging.WARNING,
            store=store.name,
            problems="; ".join(weak),
            settings=seen,
            advice=ADVICE,
        )
    else:
        event(log, "store_persistence_ok", store=store.name, settings=seen)
