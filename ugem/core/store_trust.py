"""Whether what a store holds may replace the registry a node holds: never an empty or
older store for the truth.

`refusal(held, seen)` is a pure function of what the node holds (`Held`: the
generation, version and number of connections of its view, None when it holds
nothing yet) and what it saw in the store (`Seen`; `connections` is None while
they have not been read: a first look at the generation and version alone).
It answers None when the store may be taken, else the sentence that says why
not, for the log and `/readyz`:

- a node holding no connection has nothing to lose: it takes any store;
- a store with no generation is empty or lost its data (restarted without
  persistence, a replica promoted before it had the data);
- a store of another generation was made anew, not the one the copy came from;
- a store whose version is below the copy's is older (restored from an old
  snapshot);
- a store with a generation but no connection, while the copy holds some,
  was emptied.

Refused, a node keeps serving its copy until an operator puts the registry
back (`ugem store restore`). Never raises.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Held:
    generation: str | None
    version: int
    connections: int


@dataclass(frozen=True)
class Seen:
    generation: str | None
    version: int
    connections: int | None = None  # None: not read yet


def refusal(held: Held | None, seen: Seen) -> str | None:
    """None when `seen` may replace `held`; else what makes it untrustworthy."""
    if held is None or held.connections == 0:
        return None
    mine = f"this node's copy is generation {held.generation} version {held.version}"
    if seen.generation is None:
        return f"the store has no generation: it is empty or lost its data ({mine})"
    if seen.generation != held.generation:
        return f"the store is of another generation, {seen.generation} ({mine})"
    if seen.version < held.version:
        return f"the store is older: version {seen.version} ({mine})"
    if seen.connections == 0:
        return (
            f"the store holds no connection at version {seen.version} "
            f"and this node's copy holds {held.connections}"
        )
    return None
