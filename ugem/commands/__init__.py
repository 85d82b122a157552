"""The `ugem` command groups; each module registers its subcommands.

These modules are part of the node's wiring: like `ugem.node`, they may import
`relay` (the queue commands open the spool). Nothing else in `ugem` does.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ugem.commands import (
    anomaly,
    application,
    audit,
    config,
    connection,
    dkim,
    incident,
    override,
    queue,
    serve,
    token,
)

Register = Callable[
    ["argparse._SubParsersAction[argparse.ArgumentParser]", argparse.ArgumentParser], None
]

GROUPS: list[Register] = [
    serve.register,
    config.register,
    connection.register,
    queue.register,
    token.register,
    audit.register,
    application.register,
    anomaly.register,
    incident.register,
    override.register,
    dkim.register,
]
