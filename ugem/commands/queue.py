"""`ugem queue list|show|hold|release|delete|retry`: the queue by hand, like mailq/postsuper.

Every subcommand opens the node's spool files (`<data_dir>/spool/queue.db`, and
`queue-w<i>.db` of the other workers of `ugem serve --workers N`) as a second
process beside a running node, without the recovery a node's start
does; SQLite's locks keep the edits safe, and the node sees them on its next
scan of the queue. Holds, releases and deletions are written to the audit log
of the registry store (`cli:<login>`, the queue id, the reason, the count).
`show` reads through the admin API's `QueueService`, so `--body` is the same
audited read of private mail as the API's (`queue.read-body`; the CLI is a
local admin), and a body that cannot be audited is not shown.
An unknown queue id exits 1 naming it, and then nothing is changed; a spool
that cannot be opened or written exits 1 with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from relay.queue.message import QueuedMessage, QueueState
from relay.queue.spool import Spool, spool_paths
from ugem.adapters.spool_queue import SpoolQueue
from ugem.cli import add_json_flag, print_json, print_table
from ugem.core.clock import SystemClock
from ugem.core.config import Config
from ugem.core.errors import NotFoundError, UsageError
from ugem.core.metrics import Metrics
from ugem.core.services.audit import AuditLog
from ugem.core.services.mailqueue import MailItem, MailView, QueueService
from ugem.core.services.tokens import Role
from ugem.core.store import open_store
from ugem.core.store.base import AuditEntry

T = TypeVar("T")
LIST_COLUMNS = ["id", "state", "size", "age", "sender", "rcpts", "attempts", "last_error"]
ERROR_WIDTH = 60  # characters of the last error shown in the table
OPERATOR_HOLD = "held by operator"  # hold reason when --reason is not given
_DONE = {"hold": "held", "release": "released", "delete": "deleted", "retry": "made due"}

Edit = Callable[[Spool, str, str], Awaitable[int]]  # (spool, queue id, reason) -> count
Found = tuple[Spool, QueuedMessage]


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("queue", parents=[common], help="list and manage queued mail")
    cmds = p.add_subparsers(dest="queue_command", metavar="ACTION", required=True)
    lister = cmds.add_parser("list", parents=[common], help="list queued messages (like mailq)")
    lister.add_argument("--state", choices=[str(s) for s in QueueState], help="only this state")
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
    retry.set_defaults(handler=retry_messages)


# ---------------------------------------------------------------- plumbing


def _with_spools(config: Config, action: Callable[[list[Spool]], Awaitable[T]]) -> T:
    """Open every worker's spool (as a second process: no recovery), run `action`, close."""

    async def run() -> T:
        spools: list[Spool] = []
        try:
            for path in spool_paths(config):
                spool = Spool(path, SystemClock(), Metrics(), max_size_mb=config.spool.max_size_mb)
                await spool.open(recover=False)
                spools.append(spool)
            return await action(spools)
        finally:
            for spool in spools:
                await spool.close()

    return asyncio.run(run())


async def _find(spools: Sequence[Spool], queue_id: str) -> Found | None:
    """The spool that holds `queue_id`, and the message; None when no worker has it."""
    for spool in spools:
        msg = await spool.get(queue_id)
        if msg is not None:
            return spool, msg
    return None


async def _locate(spools: Sequence[Spool], ids: Sequence[str]) -> list[Spool]:
    """The spool of each id, in order; NotFoundError naming every id none of them has."""
    found = [await _find(spools, i) for i in ids]
    missing = [i for i, f in zip(ids, found, strict=True) if f is None]
    if missing:
        raise NotFoundError(f"queue id not found: {', '.join(missing)} (see `ugem queue list`)")
    return [f[0] for f in found if f is not None]


def _actor() -> str:
    try:
        return "cli:" + getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        return "cli:unknown"


def _plural(n: int) -> str:
    return f"{n} message" if n == 1 else f"{n} messages"


def _edit_audited(config: Config, args: argparse.Namespace, action: str, edit: Edit) -> int:
    """Check every id, open the audit log, edit each message, audit each; print the count."""
    ids: list[str] = list(dict.fromkeys(args.ids))

    async def run(spools: list[Spool]) -> int:
        store = open_store(config.store_url)  # before any change: a bad store changes nothing
        try:
            owners = await _locate(spools, ids)
            total = 0
            for queue_id, spool in zip(ids, owners, strict=True):
                n = await edit(spool, queue_id, args.reason)
                total += n
                entry = AuditEntry(
                    SystemClock().now(),
                    _actor(),
                    f"queue.{action}",
                    queue_id,
                    args.reason,
                    json.dumps({"count": n}),
                )
                await store.audit(entry)
            return total
        finally:
            await store.close()

    print(f"{_DONE[action]} {_plural(_with_spools(config, run))}")
    return 0


# ---------------------------------------------------------------- rendering


def _age(seconds: float) -> str:
    left = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if left >= size:
            return f"{left // size}{unit}"
    return f"{left}s"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_dict(msg: QueuedMessage | MailItem, now: float) -> dict[str, Any]:
    return {
        "id": msg.id,
        "state": str(msg.state),
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


def _row(msg: QueuedMessage, now: float) -> dict[str, Any]:
    error = msg.last_error.replace("\n", " ")
    if len(error) > ERROR_WIDTH:
        error = error[: ERROR_WIDTH - 3] + "..."
    return {
        "id": msg.id,
        "state": str(msg.state),
        "size": msg.size,
        "age": _age(now - msg.received_at),
        "sender": msg.sender or "<>",
        "rcpts": len(msg.rcpts),
        "attempts": msg.attempts,
        "last_error": error,
    }


def _print_message(msg: MailItem, now: float, headers: str) -> None:
    state = f"{msg.state} ({msg.hold_reason})" if msg.hold_reason else str(msg.state)
    lines = [
        ("id", msg.id),
        ("state", state),
        ("connection", msg.connection or "(inbound)"),
        ("client", msg.client_ip),
        ("received", f"{_when(msg.received_at)} ({_age(now - msg.received_at)} ago)"),
        ("size", str(msg.size)),
        ("sender", f"<{msg.sender}>"),
        ("recipients", ", ".join(msg.rcpts)),
        ("original recipients", ", ".join(msg.original_rcpts)),
        ("attempts", str(msg.attempts)),
        ("next attempt", _when(msg.next_attempt) if msg.next_attempt else "now"),
        ("last error", msg.last_error or "-"),
    ]
    for name, value in lines:
        print(f"{name + ':':21}{value}")
    print("\n" + headers.rstrip("\r\n").replace("\r\n", "\n"))


# ---------------------------------------------------------------- handlers


def list_queue(args: argparse.Namespace, config: Config) -> int:
    if args.limit < 1:
        raise UsageError(f"--limit: {args.limit} is not valid; expected a number from 1 up")
    state = QueueState(args.state) if args.state else None

    async def run(spools: list[Spool]) -> list[QueuedMessage]:
        found: list[QueuedMessage] = []
        for spool in spools:
            found += await spool.list(state=state, connection=args.connection, limit=args.limit)
        return sorted(found, key=lambda m: m.received_at)[: args.limit]

    messages, now = _with_spools(config, run), SystemClock().now()
    if args.json:
        print_json([_as_dict(m, now) for m in messages])
    else:
        print_table([_row(m, now) for m in messages], LIST_COLUMNS)
    return 0


def show_message(args: argparse.Namespace, config: Config) -> int:
    async def run(spools: list[Spool]) -> MailView:
        clock = SystemClock()
        store = open_store(config.store_url)
        try:
            [owner] = await _locate(spools, [args.id])
            service = QueueService(SpoolQueue(owner), AuditLog(store, clock), clock)
            if args.body:
                return await service.show_body(args.id, _actor(), Role.ADMIN, args.reason)
            return await service.show(args.id)
        finally:
            await store.close()

    view, now = _with_spools(config, run), SystemClock().now()
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
    async def edit(spool: Spool, queue_id: str, reason: str) -> int:
        return await spool.hold([queue_id], reason=reason or OPERATOR_HOLD)

    return _edit_audited(config, args, "hold", edit)


def release_messages(args: argparse.Namespace, config: Config) -> int:
    async def edit(spool: Spool, queue_id: str, reason: str) -> int:
        return await spool.release([queue_id])

    return _edit_audited(config, args, "release", edit)


def delete_messages(args: argparse.Namespace, config: Config) -> int:
    async def edit(spool: Spool, queue_id: str, reason: str) -> int:
        return await spool.delete([queue_id])

    return _edit_audited(config, args, "delete", edit)


def retry_messages(args: argparse.Namespace, config: Config) -> int:
    if bool(args.ids) == bool(args.all):
        raise UsageError("queue retry: name queue ids, or --all for every deferred message")
    ids: list[str] | None = None if args.all else list(dict.fromkeys(args.ids))

    async def run(spools: list[Spool]) -> int:
        if ids is None:
            return sum([await spool.retry(None) for spool in spools])
        owners = await _locate(spools, ids)
        return sum([await spool.retry([i]) for i, spool in zip(ids, owners, strict=True)])

    print(f"{_DONE['retry']} {_plural(_with_spools(config, run))}")
    return 0
