"""The load tool's exceptions, in one tree.

    LoadtestError            anything the tool reports as a clean error and exit code 1
    ├── UsageError           a bad option or spec (exit code 2); the message names what
    │                        was wrong and what is allowed
    └── TargetError          a peer (Postfix, the gateway, the sink) failed to set up, start
                             or answer; the message says which and why

The CLI prints the message of any of these on one line and exits; nothing else
is caught, so a bug still shows its traceback.
"""

from __future__ import annotations


class LoadtestError(Exception):
    """Base of every error the load tool reports cleanly."""


class UsageError(LoadtestError):
    """An option or a spec the tool cannot use."""


class TargetError(LoadtestError):
    """A peer the tool drives (Postfix, the gateway, the sink) failed."""
