"""The open-files limit a node needs, raised at start when the system allows it.

Each SMTP session, admin connection, delivery session, spool and store
connection is a file descriptor. The usual soft limit (1024) is below
`[smtp] max_connections` (2000 by default): a node under load would then
fail to accept (EMFILE) long before its own caps answered 421.
`fd_needed(config)` adds up what the node's caps allow at once (per
process) plus room for files and outbound sessions; `raise_fd_limit(need)`
lifts the soft limit to that, never above the hard limit, and says what it
did: the limit now, and whether it is short of the need (the node then
starts anyway, and logs one WARNING saying which knob to lower or which
limit to raise). Never raises.
"""

from __future__ import annotations

import contextlib
import resource
from dataclasses import dataclass

from ugem.core.config import Config

SPARE = 256  # descriptors for the spool, the store, logs, DNS, TLS reloads


def fd_needed(config: Config) -> int:
    """Descriptors one node process may hold at once under its configured caps."""
    return (
        config.smtp.max_connections
        + config.admin.max_connections
        + config.delivery.concurrency_total
        + SPARE
    )


@dataclass(frozen=True)
class FdLimit:
    need: int
    soft: int  # the soft limit now
    hard: int

    @property
    def short(self) -> bool:
        return self.soft < self.need


def raise_fd_limit(need: int) -> FdLimit:
    """Lift RLIMIT_NOFILE's soft limit to `need` (at most the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
            soft = ceiling
    if soft == resource.RLIM_INFINITY:
        soft = need
    return FdLimit(need, soft, hard)
