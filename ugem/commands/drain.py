"""`ugem drain [--to HOST:PORT | --status | --cancel]`: take a node out of service.

`ugem drain` alone stops the node accepting mail (every worker: new SMTP
sessions get 421 4.3.2, open ones are closed between commands, `/readyz`
503 "not accepting mail") while it goes on delivering its queue, and waits,
printing the count left to stderr every `--every` seconds, until the queue is
empty (exit 0) or `--timeout` seconds passed (exit 1; the node stays out of
service either way, until `--cancel`). `--no-wait` returns at once.

`--to HOST:PORT` (the other node's admin listener, or an http(s) URL) with
`--token-file F` (a file holding one of that node's admin tokens; `-` reads
it from stdin) runs `ugem.core.services.drain.DrainService` in this process,
as `ugem queue` does: beside a running node, over every worker's spool file
(`<data_dir>/spool/queue*.db`) and the store's audit log (actor
`cli:<login>`). The request it writes takes the running node out of service
first (each worker: SMTP 421 4.3.2, no delivery, `/readyz` 503 "draining"),
and stays until `--cancel`, across restarts; a drain run again with the same
`--to` resumes it. Progress goes to stderr as it changes; the report to
stdout (`--json`: one JSON object): moved, already there (a retry after a
cut, not queued twice), failed with each reason, left. Exit 0 only when the
node's queue is empty, else 1 with the reason. `--status` shows the request,
each running worker's answer and the last run's report (exit 0);
`--cancel` puts the node back in service. A bad `--to` or an empty token
exits 2 naming it; a drain running already exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from relay.queue.spool import spool_paths
from ugem.adapters.spool_queue import SpoolQueue, open_spools
from ugem.cli import add_json_flag, print_json
from ugem.commands.connection import actor, when
from ugem.commands.wiring import as_options
from ugem.core.clock import SystemClock
from ugem.core.config import Config
from ugem.core.errors import UsageError
from ugem.core.metrics import Metrics
from ugem.core.services.drain import DrainReport, DrainService, DrainStatus
from ugem.core.store import open_store
from ugem.draining import drain_service

T = TypeVar("T")


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "drain", parents=[common], help="hand this node's queue to another node and stop it"
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument("--to", metavar="HOST:PORT", help="the other node's admin listener")
    what.add_argument("--status", action="store_true", help="show the drain and its progress")
    what.add_argument("--cancel", action="store_true", help="take the node back into service")
    p.add_argument("--token-file", metavar="FILE", help="an admin token of the other node")
    p.add_argument("--no-wait", action="store_true", help="without --to: do not wait")
    p.add_argument(
        "--timeout", type=float, default=0.0, metavar="S", help="without --to: wait at most S s"
    )
    p.add_argument("--every", type=float, default=5.0, metavar="S", help=argparse.SUPPRESS)
    p.add_argument("--reason", default="", metavar="TEXT", help="why (kept in the audit log)")
    add_json_flag(p)
    p.set_defaults(handler=drain)


def drain(args: argparse.Namespace, config: Config) -> int:
    if args.status:
        return _show(config, args.json)
    if args.cancel:
        status = _with_service(config, lambda s: s.cancel(actor(), args.reason))
        _print_status(status, args.json)
        return 0
    if args.to is None:
        return _stop_accepting(args, config)
    token = _token(args.token_file)
    printer = None if args.json else _progress
    with as_options({"to": "--to", "token": "--token-file"}):
        report = _with_service(
            config, lambda s: s.run(args.to, token, actor(), args.reason, on_progress=printer)
        )
    if args.json:
        print_json(report.as_dict())
    else:
        _print_report(report)
    return 0 if report.empty else 1


def _stop_accepting(args: argparse.Namespace, config: Config) -> int:
    """Stop accepting, keep delivering; wait until the queue is empty (or not at all)."""
    if args.timeout < 0 or args.every <= 0:
        raise UsageError("--timeout: a number of seconds, 0 or more (0: no limit)")

    async def wait(service: DrainService) -> int:
        await service.stop_accepting(actor(), args.reason)
        deadline = None if not args.timeout else time.monotonic() + args.timeout
        left = await service.left()
        while left and not args.no_wait:
            if deadline is not None and time.monotonic() >= deadline:
                break
            print(f"ugem drain: not accepting mail; {left} messages left", file=sys.stderr)
            await asyncio.sleep(args.every)
            left = await service.left()
        return left

    left = _with_service(config, wait)
    if args.json:
        print_json({"accepting": False, "left": left})
    else:
        print(
            f"not accepting mail; {left} messages left" + ("" if left else ": the queue is empty")
        )
    return 0 if left == 0 or args.no_wait else 1


def _token(path: str | None) -> str:
    if not path:
        raise UsageError("--token-file: needed with --to; a file holding the other node's token")
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--token-file: {path} cannot be read ({exc})") from exc
    if not text.strip():
        raise UsageError(f"--token-file: {path} is empty; it should hold the other node's token")
    return text.strip()


def _with_service(config: Config, action: Callable[[DrainService], Awaitable[T]]) -> T:
    """Run `action` on a drain service over every worker's spool and the store."""

    async def run() -> T:
        clock = SystemClock()
        paths = spool_paths(config)
        async with open_spools(paths, clock, config.spool.max_size_mb) as spools:
            store = open_store(config.store_url)
            try:
                service = drain_service(config, SpoolQueue(*spools), store, clock, Metrics())
                return await action(service)
            finally:
                await store.close()

    quiet = logging.NullHandler()  # the report says it all; the service's lines are a node's
    service_log = logging.getLogger("ugem.core.services.drain")
    service_log.addHandler(quiet)
    try:
        return asyncio.run(run())
    finally:
        service_log.removeHandler(quiet)


def _show(config: Config, as_json: bool) -> int:
    async def status(service: DrainService) -> DrainStatus:
        return service.status()

    _print_status(_with_service(config, status), as_json)
    return 0


# ---------------------------------------------------------------- rendering


def _progress(report: DrainReport) -> None:
    print(f"ugem drain: {_counts(report)}" + _note(report), file=sys.stderr, flush=True)


def _note(report: DrainReport) -> str:
    return f" ({report.reason})" if report.reason else ""


def _counts(report: DrainReport) -> str:
    return (
        f"{report.state}: moved {report.moved}, already there {report.already}, "
        f"failed {report.failed}, left {report.left}"
    )


def _print_report(report: DrainReport) -> None:
    if report.empty:
        print(f"drained into {report.to}: the node is empty")
    else:
        print(f"not drained into {report.to}: {report.reason or 'mail is left'}")
    print(_counts(report))
    for queue_id, why in report.failures.items():
        print(f"  {queue_id}: {why}")


def _status_dict(status: DrainStatus) -> dict[str, Any]:
    request = status.request
    return {
        "draining": request is not None,
        "request": None if request is None else vars(request),
        "running": status.running,
        "workers": {str(w): None if a is None else vars(a) for w, a in status.workers.items()},
        "report": None if status.report is None else status.report.as_dict(),
    }


def _print_status(status: DrainStatus, as_json: bool) -> None:
    if as_json:
        print_json(_status_dict(status))
        return
    request = status.request
    if request is None:
        print("not draining: the node takes and delivers mail")
    elif not request.to:
        print(f"not accepting mail since {when(request.since)} (by {request.by}); delivering")
    else:
        print(f"draining into {request.to} since {when(request.since)} (by {request.by})")
    for worker, answer in status.workers.items():
        if request is None or answer is None or answer.request != request.id:
            print(f"  worker {worker}: running")
        else:
            state = "quiet" if answer.quiet else f"{answer.in_flight} deliveries in flight"
            doing = "delivering" if not request.to else "paused"
            print(f"  worker {worker}: {doing}, {state}, {answer.sessions} sessions")
    report = status.report
    if report is not None:
        running = " (running)" if status.running else ""
        print(f"last run into {report.to}{running}: {_counts(report)}{_note(report)}")
