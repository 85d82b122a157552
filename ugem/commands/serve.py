"""`ugem serve`: run a node (SMTP, delivery, admin HTTP) until SIGTERM.

Uses uvloop when it is installed (`--no-uvloop` for the standard loop).
Startup failures (a port in use, an unreadable spool) print one line and
exit 1; a clean stop on SIGTERM exits 0.
"""

from __future__ import annotations

import argparse
import asyncio

from ugem.config import Config
from ugem.log import setup


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("serve", parents=[common], help="run a gateway node")
    p.add_argument("--no-uvloop", action="store_true", help="use asyncio's own event loop")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, config: Config) -> int:
    from ugem.node import serve

    setup(config.log.level, config.log.format)
    if not args.no_uvloop:
        try:
            import uvloop

            return uvloop.run(serve(config))
        except ImportError:
            pass
    return asyncio.run(serve(config))
