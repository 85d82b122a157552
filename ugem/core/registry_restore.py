"""Putting the registry back into its store from a node's copy: `ugem store restore`.

A store that restarted empty, was made anew or went back to an old snapshot
is refused by every node that holds a copy (`ugem.core.store_trust`); they
relay on their copies until an operator restores it. `restore(store, copy,
...)` writes the copy's connections (their domains, servers and states)
back, with the copy's generation and a version above the copy's, in one
atomic step (`Store.restore_registry`), so the nodes take it at their next
probe; then it audits `store.restore`. Connections the store holds that the
copy does not are left as they are. It refuses (ConflictError, nothing
written) a store that is not behind the copy, that a node holding the copy
would take as it is, unless `force`; and a copy whose domain belongs, in the
store, to a connection the copy does not hold. `freshest(paths)` picks the
copy to restore from among a data dir's (the highest version, then the latest
read); a copy that cannot be read is a StoreError naming it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ugem.core.errors import ConflictError, UsageError
from ugem.core.registry_copy import RegistryCopy, read_copy
from ugem.core.store.base import AuditEntry, Store
from ugem.core.store_trust import Held, Seen, refusal


@dataclass(frozen=True)
class Restored:
    generation: str
    version: int  # the store's, after the restore
    connections: int
    why: str  # what the store was found to be ("" when forced on a store not behind)


def freshest(paths: Sequence[Path]) -> tuple[Path, RegistryCopy]:
    """The copy with the highest version (then the latest read) among `paths`."""
    found = [(path, copy) for path in paths if (copy := read_copy(path)) is not None]
    if not found:
        names = ", ".join(str(p) for p in paths) or "none"
        raise UsageError(f"--from-copy: no registry copy found (looked at: {names})")
    return max(found, key=lambda item: (item[1].version, item[1].read_at))


async def verdict(store: Store, copy: RegistryCopy) -> tuple[Seen, str | None]:
    """What the store holds, and why a node holding `copy` refuses it (None: it takes it)."""
    generation, version = await store.generation()
    seen = Seen(generation, version, len(await store.list()))
    held = Held(copy.generation, copy.version, len(copy.connections))
    return seen, refusal(held, seen)


async def restore(
    store: Store, copy: RegistryCopy, now: float, actor: str, source: str, force: bool = False
) -> Restored:
    """Write `copy` back into `store` (see the module's docstring); audited."""
    seen, why = await verdict(store, copy)
    if why is None and not force:
        raise ConflictError(
            f"the store needs no restore: generation {seen.generation}, version "
            f"{seen.version}, {seen.connections} connections is not behind this copy "
            f"(generation {copy.generation}, version {copy.version}); --force writes it anyway"
        )
    conns = list(copy.connections)
    await store.restore_registry(copy.generation, copy.version + 1, conns)
    details = {
        "copy": source,
        "copy_version": copy.version,
        "read_at": copy.read_at,
        "connections": len(conns),
    }
    reason = why or "forced"
    await store.audit(
        AuditEntry(now, actor, "store.restore", copy.generation, reason, json.dumps(details))
    )
    _, version = await store.generation()
    return Restored(copy.generation, version, len(conns), why or "")
