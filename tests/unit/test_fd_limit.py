"""ugem.fd_limit: the node lifts its open-files limit to what its caps need, or says so.

Found while closing issue 10: the default [smtp] max_connections (2000) is above the usual
soft limit of 1024, so a node under load would hit EMFILE before its own 421s.
Each case runs in a child process, whose limits it sets first.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap

from ugem.core.config import Config
from ugem.fd_limit import SPARE, fd_needed

PROBE = textwrap.dedent(
    """
    import resource, sys
    from ugem.fd_limit import raise_fd_limit
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2])))
    got = raise_fd_limit(int(sys.argv[3]))
    now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    print(got.soft, got.hard, int(got.short), now)
    """
)


def probe(soft: int, hard: int, need: int) -> list[int]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(soft), str(hard), str(need)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [int(x) for x in done.stdout.split()]


def test_the_soft_limit_is_raised_to_the_need() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    top = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    need = min(3000, top)
    assert probe(256, top, need) == [need, top, 0, need]


def test_a_hard_limit_below_the_need_is_reported_short() -> None:
    assert probe(256, 600, 3000) == [600, 600, 1, 600]


def test_the_need_adds_up_the_caps() -> None:
    config = Config()
    assert fd_needed(config) == (
        config.smtp.max_connections
        + config.admin.max_connections
        + config.delivery.concurrency_total
        + SPARE
    )
