"""`ugem serve`: run a node (SMTP, delivery, admin HTTP) until SIGTERM.

Uses uvloop when it is installed (`--no-uvloop` for the standard loop).
With `--workers N` (or `[node] workers`) above 1 it runs a supervisor of N
worker processes sharing the SMTP port (`ugem.supervisor`); each worker is
this same command with the hidden `--worker-index I` and `--smtp-fd FD` (the
SMTP port's listening socket, bound once by the supervisor).
Startup failures (a port in use, an unreadable spool) print one line and
exit 1; a clean stop on SIGTERM exits 0. A node name the internet cannot use
(`localhost`, or one without a dot: the banner, the Received: headers and
the notices' postmaster@ would carry it) is warned about once at start
(`hostname_not_qualified`), naming the key to set.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import socket
from collections.abc import Coroutine
from typing import Any

from relay.accept.listener import bind_listener
from ugem.cli import config_path
from ugem.core.config import Config
from ugem.core.errors import UsageError
from ugem.core.log import event, setup
from ugem.malloc import fix_mmap_threshold
from ugem.parent_death import die_with_parent, parent_from_env
from ugem.supervisor import Supervisor

MAX_WORKERS = 64
log = logging.getLogger(__name__)


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("serve", parents=[common], help="run a gateway node")
    p.add_argument("--no-uvloop", action="store_true", help="use asyncio's own event loop")
    p.add_argument(
        "--workers", type=int, metavar="N", help="worker processes (default: [node] workers)"
    )
    p.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--smtp-fd", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(handler=run)


def check_hostname(name: str) -> None:
    """A WARNING when `name` is `localhost` or has no dot: not a name the internet uses."""
    if name.split(".", 1)[0] == "localhost" or "." not in name.strip("."):
        event(
            log,
            "hostname_not_qualified",
            logging.WARNING,
            hostname=name,
            key="node.hostname",
            why="banners, Received: headers and notices from postmaster@ carry it; "
            "set node.hostname to the gateway's fully qualified name",
        )


def run(args: argparse.Namespace, config: Config) -> int:
    from ugem.node import serve  # the wiring imports every part: only when serving

    setup(config.log.level, config.log.format)
    fix_mmap_threshold()  # freed message buffers go back to the system (ugem.malloc)
    workers = config.node.workers if args.workers is None else args.workers
    if not 1 <= workers <= MAX_WORKERS:
        raise UsageError(f"--workers: {workers} is not valid; expected 1 to {MAX_WORKERS}")
    config = dataclasses.replace(config, node=dataclasses.replace(config.node, workers=workers))
    if args.worker_index is None:  # once a node, not once a worker
        check_hostname(config.hostname)
    main: Coroutine[Any, Any, int]
    if workers > 1 and args.worker_index is None:
        smtp = bind_listener(config.smtp.listen, config.smtp.listen_backlog)
        main = Supervisor(workers, config_path(args), smtp).run()
    else:
        if args.worker_index is not None and (parent := parent_from_env()) is not None:
            die_with_parent(parent)  # a worker never outlives its supervisor
        inherited = None if args.smtp_fd is None else socket.socket(fileno=args.smtp_fd)
        main = serve(config, args.worker_index or 0, inherited, config_path(args))
    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return int(uvloop.run(main))
    return asyncio.run(main)
