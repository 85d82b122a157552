"""`ugem queue list|show|hold|release|delete|retry`: the queue by hand, like mailq/postsuper.

Every subcommand goes through the admin API's `QueueService`, so the CLI and
the API are one logic: the same checks, the same errors, the same audit
entries (actor `cli:<login>`; `queue.hold`, `queue.release`, `queue.delete`,
`queue.retry` with the queue id, the reason and the count, `queue.retry-all`
for `retry --all`; `show --body` is the audited read of private mail,
`queue.read-body`, and a body that cannot be audited is not shown), the same
hold reason when none is given (`OPERATOR_HOLD`). The service sees every
worker's spool (`<data_dir>/spool/queue.db`, and `queue-w<i>.db` of the other
workers of `ugem serve --workers N`) through `ugem.adapters.spool_queue`: the
files are opened as a second process beside a running node, without the
recovery a node's start does; SQLite's locks keep the edits safe, and each
worker sees them on its next scan of its queue. `list` shows them merged in
queue id order (ids sort by time: oldest first). Several ids are checked
together before the first change: an unknown id exits 1 naming every unknown
one, a message whose state does not fit the action (holding held mail,
releasing mail that is not held, retrying mail that is not deferred) exits 1
saying what fits, and then nothing is changed. A bad option exits 2 naming it;
a spool or a store that cannot be opened or written exits 1 with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from relay.queue.spool import spool_paths
from ugem.adapters.spool_queue import SpoolQueue, open_spools
from ugem.cli import add_json_flag, print_json, print_table
from ugem.commands.connection import when
from ugem.commands.wiring import index_journal
from ugem.core.clock import SystemClock
from ugem.core.config import Config
from ugem.core.errors import UsageError
from ugem.core.services.audit import AuditLog
from ugem.core.services.mailqueue import STATES, MailItem, MailView, QueueService, Verb
from ugem.core.services.tokens import Role
from ugem.core.store import open_store

T = TypeVar("T")
LIST_COLUMNS = ["id", "state", "size", "age", "sender", "rcpts", "attempts", "last_error"]
ERROR_WIDTH = 60  # characters of the last error shown in the table
_DONE = {"hold": "held", "release": "released", "delete": "deleted", "retry": "made due"}


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("queue", parents=[common], help="list and manage queued mail")
    cmds = p.add_subparsers(dest="queue_command", metavar="ACTION", required=True)
    lister = cmds.add_parser("list", parents=[common], help="list queued messages (like mailq)")
    lister.add_argument("--state", choices=STATES, help="only this state")
    lister.add_argument("--connection", metavar="ID", help="only mail of this connection")
    lister.add_argument("--limit", type=int, default=1000, help="most messages (default 1000)")
    add_json_flag(lister)
    lister.set_defaults(handler=list_queue)
    show = cmds.add_parser("show", parents=[common], help="show one message's envelope and headers")
    show.add_argument("id", metavar="ID")
    show.add_argument("--body", action="store_true", help="print the body too (audited)")
    show.add_argument("--reason", default="", help="why the body is read (audit log)")
    add_json_flag(show)
    show.set_defaults(handler=show_message)
    for verb, handler, help_text in (
        ("hold", hold_messages, "hold messages: not delivered until released"),
        ("release", release_messages, "release held messages for delivery now"),
        ("delete", delete_messages, "delete messages without a bounce"),
    ):
        edit = cmds.add_parser(verb, parents=[common], help=help_text)
        edit.add_argument("ids", metavar="ID", nargs="+")
        edit.add_argument("--reason", default="", help="why (kept in the audit log)")
        edit.set_defaults(handler=handler)
    retry = cmds.add_parser("retry", parents=[common], help="make deferred messages due now")
    retry.add_argument("ids", metavar="ID", nargs="*")
    retry.add_argument("--all", action="store_true", help="every deferred message")
    retry.add_argument("--reason", default="", help="why (kept in the audit log)")
    retry.set_defaults(handler=retry_messages)


# ---------------------------------------------------------------- plumbing


def _with_service(config: Config, action: Callable[[QueueService], Awaitable[T]]) -> T:
    """Run `action` on a `QueueService` over every worker's spool and the store's audit log."""

    async def run() -> T:
        clock = SystemClock()
        paths = spool_paths(config)
        async with open_spools(paths, clock, config.spool.max_size_mb) as spools:
            store = open_store(config.store_url)  # before any change: a bad store changes nothing
            try:
                with index_journal(config) as journal:  # the changes, for `ugem log search`
                    audit = AuditLog(store, clock)
                    return await action(QueueService(SpoolQueue(*spools), audit, clock, journal))
            finally:
                await store.close()

    return asyncio.run(run())


def _actor() -> str:
    try:
        return "cli:" + getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        return "cli:unknown"


def _plural(n: int) -> str:
    return f"{n} message" if n == 1 else f"{n} messages"


def _change(config: Config, args: argparse.Namespace, verb: Verb) -> int:
    """`verb` on every id named (all checked first), audited per id; print the count."""

    async def run(service: QueueService) -> int:
        return await service.change(verb, args.ids, _actor(), args.reason)

    print(f"{_DONE[verb]} {_plural(_with_service(config, run))}")
    return 0


# ---------------------------------------------------------------- rendering


def _age(seconds: float) -> str:
    left = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if left >= size:
            return f"{left // size}{unit}"
    return f"{left}s"


def _as_dict(msg: MailItem, now: float) -> dict[str, Any]:
    return {
        "id": msg.id,
        "state": msg.state,
        "hold_reason": msg.hold_reason,
        "size": msg.size,
        "received_at": msg.received_at,
        "age_seconds": round(now - msg.received_at, 3),
        "connection": msg.connection,
        "client_ip": msg.client_ip,
        "sender": msg.sender,
        "rcpts": list(msg.rcpts),
        "original_rcpts": list(msg.original_rcpts),
        "attempts": msg.attempts,
        "next_attempt": msg.next_attempt,
        "last_error": msg.last_error,
    }


def _row(msg: MailItem, now: float) -> dict[str, Any]:
    error = msg.last_error.replace("\n", " ")
    if len(error) > ERROR_WIDTH:
        error = error[: ERROR_WIDTH - 3] + "..."
    return {
        "id": msg.id,
        "state": msg.state,
        "size": msg.size,
        "age": _age(now - msg.received_at),
        "sender": msg.sender or "<>",
        "rcpts": len(msg.rcpts),
        "attempts": msg.attempts,
        "last_error": error,
    }


def _print_message(msg: MailItem, now: float, headers: str) -> None:
    state = f"{msg.state} ({msg.hold_reason})" if msg.hold_reason else msg.state
    lines = [
        ("id", msg.id),
        ("state", state),
        ("connection", msg.connection or "(inbound)"),
        ("client", msg.client_ip),
        ("received", f"{when(msg.received_at)} ({_age(now - msg.received_at)} ago)"),
        ("size", str(msg.size)),
        ("sender", f"<{msg.sender}>"),
        ("recipients", ", ".join(msg.rcpts)),
        ("original recipients", ", ".join(msg.original_rcpts)),
        ("attempts", str(msg.attempts)),
        ("next attempt", when(msg.next_attempt) if msg.next_attempt else "now"),
        ("last error", msg.last_error or "-"),
    ]
    for name, value in lines:
        print(f"{name + ':':21}{value}")
    print("\n" + headers.rstrip("\r\n").replace("\r\n", "\n"))


# ---------------------------------------------------------------- handlers


def list_queue(args: argparse.Namespace, config: Config) -> int:
    if args.limit < 1:
        raise UsageError(f"--limit: {args.limit} is not valid; expected a number from 1 up")

    async def run(service: QueueService) -> list[MailItem]:
        return await service.list(args.state, args.connection, limit=args.limit)

    messages, now = _with_service(config, run), SystemClock().now()
    if args.json:
        print_json([_as_dict(m, now) for m in messages])
    else:
        print_table([_row(m, now) for m in messages], LIST_COLUMNS)
    return 0


def show_message(args: argparse.Namespace, config: Config) -> int:
    async def run(service: QueueService) -> MailView:
        if args.body:
            return await service.show_body(args.id, _actor(), Role.ADMIN, args.reason)
        return await service.show(args.id)

    view, now = _with_service(config, run), SystemClock().now()
    if args.json:
        out = _as_dict(view.item, now) | {"headers": view.headers}
        if view.body is not None:
            out["body"] = view.body
        print_json(out)
        return 0
    _print_message(view.item, now, view.headers)
    if view.body is not None:
        print()
        sys.stdout.write(view.body.replace("\r\n", "\n"))
    return 0


def hold_messages(args: argparse.Namespace, config: Config) -> int:
    return _change(config, args, "hold")


def release_messages(args: argparse.Namespace, config: Config) -> int:
    return _change(config, args, "release")


def delete_messages(args: argparse.Namespace, config: Config) -> int:
    return _change(config, args, "delete")


def retry_messages(args: argparse.Namespace, config: Config) -> int:
    if bool(args.ids) == bool(args.all):
        raise UsageError("queue retry: name queue ids, or --all for every deferred message")
    if args.ids:
        return _change(config, args, "retry")

    async def run(service: QueueService) -> int:
        return await service.retry_all(_actor(), args.reason)

    print(f"{_DONE['retry']} {_plural(_with_service(config, run))}")
    return 0
