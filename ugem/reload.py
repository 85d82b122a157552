"""SIGHUP and `ugem reload`: a running worker takes its changed configuration file.

`plan(old, new)` compares two configurations key by key and splits the keys
that changed into those a running worker applies (`LIVE`) and those that need
a restart; `merged(old, new, live)` is the configuration the worker then runs
on: the new values of the live keys, the old values of every other. What is
live and how it is applied (by `ugem.node.Node.reload`):

- `[smtp]`, all but `listen`, `listen_backlog` and `data_memory`: new sessions
  follow the new limits, open sessions keep theirs (no session is dropped);
  the STARTTLS certificate and key are read again on every reload;
- `[delivery] routes`: the next hops of the mail routed from then on;
- `[auth]`: the inbound checks of new sessions;
- `[log] level`.

Everything else (listeners, the data directory, the store, the spool, workers,
DKIM, the detector, the reputation watch, the delivery schedule...) is named
as needing a restart and keeps its old value. A file that does not load (a
bad value) changes nothing: the reload is refused with the error, naming the
key, and the worker runs on as it was.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Final

from ugem.core.config import SECTIONS, Config

NOT_LIVE_SMTP: Final = frozenset({"listen", "listen_backlog", "data_memory"})


def _smtp_live() -> frozenset[str]:
    keys = {f.name for f in dataclasses.fields(SECTIONS["smtp"])}
    return frozenset(f"smtp.{k}" for k in keys - NOT_LIVE_SMTP)


def _section_keys(section: str) -> frozenset[str]:
    return frozenset(f"{section}.{f.name}" for f in dataclasses.fields(SECTIONS[section]))


LIVE: Final = _smtp_live() | {"delivery.routes", "log.level"} | _section_keys("auth")


@dataclass(frozen=True)
class ReloadResult:
    at: float
    applied: list[str] = field(default_factory=list)  # keys changed and taken
    restart: list[str] = field(default_factory=list)  # keys changed that need a restart
    error: str = ""  # the file did not load: nothing changed

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def changed(old: Config, new: Config) -> list[str]:
    """`section.key` of every knob whose value differs, in the table's order."""
    out = []
    for name in SECTIONS:
        before, after = getattr(old, name), getattr(new, name)
        for f in dataclasses.fields(before):
            if getattr(before, f.name) != getattr(after, f.name):
                out.append(f"{name}.{f.name}")
    return out


def plan(old: Config, new: Config) -> tuple[list[str], list[str]]:
    """(live, restart): the changed keys a running worker applies, and the others."""
    keys = changed(old, new)
    return [k for k in keys if k in LIVE], [k for k in keys if k not in LIVE]


def merged(old: Config, new: Config, live: list[str]) -> Config:
    """`old` with the values of the `live` keys taken from `new`."""
    by_section: dict[str, dict[str, Any]] = {}
    for key in live:
        section, name = key.split(".", 1)
        by_section.setdefault(section, {})[name] = getattr(getattr(new, section), name)
    sections = {
        name: dataclasses.replace(getattr(old, name), **values)
        for name, values in by_section.items()
    }
    return dataclasses.replace(old, **sections)
