"""The `ugem` command groups; each module registers its subcommands.

These modules are part of the node's wiring: like `ugem.node`, they may import
`relay` (the queue commands open the spool). Nothing else in `ugem` does.

A group's module is named as its command. `registers(argv)` imports only the
group the command line names (one `ugem anomaly replay` does not pay for
importing the relay, the admin API and FastAPI: about 0.75 s), and every
group when it names none (help, a typo: argparse then lists them all).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence

Register = Callable[
    ["argparse._SubParsersAction[argparse.ArgumentParser]", argparse.ArgumentParser], None
]

GROUP_NAMES = (
    "serve",
    "config",
    "connection",
    "queue",
    "token",
    "audit",
    "application",
    "anomaly",
    "incident",
    "override",
    "dkim",
    "reputation",
    "store",
    "drain",
    "status",
    "reload",
    "log",
)
OPTIONS_WITH_VALUE = ("--config",)


def registers(argv: Sequence[str] | None = None) -> list[Register]:
    """The register functions of the group `argv` names, or of every group."""
    named = _command(argv or ())
    names = [named] if named in GROUP_NAMES else GROUP_NAMES
    return [importlib.import_module(f"ugem.commands.{name}").register for name in names]


def _command(argv: Sequence[str]) -> str | None:
    """The first word of `argv` that is neither an option nor an option's value."""
    words = iter(argv)
    for word in words:
        if word in OPTIONS_WITH_VALUE:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None
