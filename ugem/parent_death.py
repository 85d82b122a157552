"""A worker does not outlive its supervisor: it is sent SIGTERM when its parent dies.

`die_with_parent(parent)` asks the Linux kernel (prctl PR_SET_PDEATHSIG) to
send this process SIGTERM when its parent dies, and, since the parent may
have died before the request was made, sends it at once when the parent is
no longer `parent` (the pid the supervisor passed in `PARENT_ENV`). A worker
left behind by a supervisor that was killed (SIGKILL, an OOM kill) would
otherwise keep the SMTP port and its admin port, and take part of the mail
with nobody to restart or stop it. SIGTERM stops a worker cleanly, as the
supervisor's own stop does. Where prctl is not available (not Linux) only
the check at start is made, and that is logged once. Nothing here raises.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal

from ugem.core.log import event

log = logging.getLogger(__name__)

PARENT_ENV = "UGEM_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1


def _ask_kernel(sig: int) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(parent: int) -> None:
    """SIGTERM to this process when its parent (`parent`) dies, or now if it has."""
    if not _ask_kernel(signal.SIGTERM):
        event(log, "parent_death_unwatched", logging.WARNING, parent=parent)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def parent_from_env() -> int | None:
    """The supervisor's pid as it passed it, None when this process has none."""
    try:
        return int(os.environ[PARENT_ENV])
    except (KeyError, ValueError):
        return None
