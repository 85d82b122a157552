"""`ugem queue list|summary|show|hold|release|delete|retry|bounce|flush`: the queue by hand.

Like Postfix's mailq, qshape, postsuper and `postqueue -f`. Every subcommand
goes through the admin API's `QueueService`, so the CLI and the API are one
logic: the same checks, the same errors, the same audit entries (actor
`cli:<login>`; `queue.hold`, `queue.release`, `queue.delete`, `queue.retry`,
`queue.bounce` with the queue id, the reason and the count; `queue.bulk-<verb>`
once for an action by filter, with the filter and the count; `queue.flush` for
`flush` and `retry --all`; `show --body` is the audited read of private mail,
`queue.read-body`, and a body that cannot be audited is not shown), the same
hold reason when none is given (`OPERATOR_HOLD`).

Filters (`list`, `summary` and the actions): `--state`, `--connection`,
`--sender` and `--recipient` (an address, `@domain` for anyone there, `<>` the
null sender), `--domain` (a recipient's domain), `--older-than` and
`--newer-than` (durations: 30m, 2h, 3d, 1h30m, or seconds). `summary` counts
messages by destination domain (or `--by connection`) in qshape's age buckets
(0-5, 5-10, 10-20, 20-40, 40-80, 80-160, 160-320, 320+ minutes since
received), the `--top` rows (20) and the rest summed as `(other)`. An action
takes queue ids, or a filter and `--reason` (a filter with no option is
refused unless `--all` is given, `--dry-run` only counts); `bounce` returns
mail to its sender with a DSN ("deleted by the postmaster: <reason>") and
deletes it; `flush` makes every deferred message due now.

The service sees every worker's spool (`<data_dir>/spool/queue.db`, and
`queue-w<i>.db` of the other workers of `ugem serve --workers N`) through
`ugem.adapters.spool_queue`: the files are opened as a second process beside a
running node, without the recovery a node's start does; SQLite's locks keep
the edits safe, and each worker sees them on its next scan of its queue.
`list` shows them merged in queue id order (ids sort by time: oldest first).
Several ids are checked together before the first change: an unknown id
exits 1 naming every unknown one, a message whose state does not fit the
action (holding held mail, releasing mail that is not held, retrying mail
that is not deferred) exits 1 saying what fits, and then nothing is changed.
A bad option exits 2 naming it; a spool or a store that cannot be opened or
written exits 1 with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from relay.queue.spool import spool_paths
from ugem.adapters.spool_queue import Returner, SpoolQueue, open_spools
from ugem.cli import add_json_flag, print_json, print_table
from ugem.commands.queue_render import (
    LIST_COLUMNS,
    as_dict,
    print_message,
    print_shape,
    row,
    shape_dict,
)
from ugem.commands.wiring import as_options, index_journal
from ugem.core.clock import SystemClock
from ugem.core.config import Config
from ugem.core.errors import UsageError
from ugem.core.queue_filter import DURATION_HELP, STATES, Criteria
from ugem.core.queue_shape import BY, DEFAULT_TOP, QueueShape
from ugem.core.services.audit import AuditLog
from ugem.core.services.mailqueue import MailItem, MailView, QueueService, Verb
from ugem.core.services.tokens import Role
from ugem.core.store import open_store

T = TypeVar("T")
_DONE = {
    "hold": "held",
    "release": "released",
    "delete": "deleted",
    "retry": "made due",
    "bounce": "returned",
}
FILTERS = ("state", "connection", "sender", "recipient", "domain", "older_than", "newer_than")
OPTIONS = {name: "--" + name.replace("_", "-") for name in (*FILTERS, "reason", "by", "top")}
_ACTIONS: tuple[tuple[Verb, str], ...] = (
    ("hold", "hold messages: not delivered until released"),
    ("release", "release held messages for delivery now"),
    ("delete", "delete messages without a bounce"),
    ("retry", "make deferred messages due now"),
    ("bounce", "return messages to their senders with a DSN, and delete them"),
)


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("queue", parents=[common], help="list and manage queued mail")
    cmds = p.add_subparsers(dest="queue_command", metavar="ACTION", required=True)
    lister = cmds.add_parser("list", parents=[common], help="list queued messages (like mailq)")
    _add_filter(lister)
    lister.add_argument("--limit", type=int, default=1000, help="most messages (default 1000)")
    add_json_flag(lister)
    lister.set_defaults(handler=list_queue)
    summary = cmds.add_parser(
        "summary", parents=[common], help="messages by destination and age (like qshape)"
    )
    _add_filter(summary)
    summary.add_argument("--by", choices=BY, default="destination", help="rows (destination)")
    summary.add_argument(
        "--top", type=int, default=DEFAULT_TOP, help=f"rows shown, the rest summed ({DEFAULT_TOP})"
    )
    add_json_flag(summary)
    summary.set_defaults(handler=summarize)
    show = cmds.add_parser("show", parents=[common], help="show one message's envelope and headers")
    show.add_argument("id", metavar="ID")
    show.add_argument("--body", action="store_true", help="print the body too (audited)")
    show.add_argument("--reason", default="", help="why the body is read (audit log)")
    add_json_flag(show)
    show.set_defaults(handler=show_message)
    for verb, help_text in _ACTIONS:
        edit = cmds.add_parser(verb, parents=[common], help=help_text)
        edit.add_argument("ids", metavar="ID", nargs="*", help="queue ids (or a filter)")
        _add_filter(edit)
        edit.add_argument("--all", action="store_true", help="every message the action fits")
        edit.add_argument("--dry-run", action="store_true", help="count them; change nothing")
        edit.add_argument("--reason", default="", help="why (audit log; needed with a filter)")
        edit.set_defaults(handler=act, verb=verb)
    flush = cmds.add_parser("flush", parents=[common], help="make every deferred message due now")
    flush.add_argument("--reason", default="", help="why (kept in the audit log)")
    flush.set_defaults(handler=flush_queue)


def _add_filter(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", choices=STATES, help="only this state")
    parser.add_argument("--connection", metavar="ID", help="only mail of this connection")
    parser.add_argument("--sender", metavar="ADDR", help="address, @domain, or <> for bounces")
    parser.add_argument("--recipient", metavar="ADDR", help="address or @domain")
    parser.add_argument("--domain", help="a domain of the recipients still to deliver")
    for name in ("older-than", "newer-than"):
        parser.add_argument(f"--{name}", metavar="AGE", help=f"received {name}: {DURATION_HELP}")


def _criteria(args: argparse.Namespace) -> Criteria:
    return Criteria(**{name: getattr(args, name) for name in FILTERS})


# ---------------------------------------------------------------- plumbing


def _with_service(config: Config, action: Callable[[QueueService], Awaitable[T]]) -> T:
    """Run `action` on a `QueueService` over every worker's spool and the store's audit log;
    the services' errors name the command's options."""

    async def run() -> T:
        clock = SystemClock()
        paths = spool_paths(config)
        async with open_spools(paths, clock, config.spool.max_size_mb) as spools:
            store = open_store(config.store_url)  # before any change: a bad store changes nothing
            try:
                with index_journal(config) as journal:  # the changes, for `ugem log search`
                    audit = AuditLog(store, clock)
                    queue = SpoolQueue(*spools, returner=Returner.of(config, clock))
                    return await action(QueueService(queue, audit, clock, journal))
            finally:
                await store.close()

    with as_options(OPTIONS):
        return asyncio.run(run())


def _actor() -> str:
    try:
        return "cli:" + getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        return "cli:unknown"


def _plural(n: int) -> str:
    return f"{n} message" if n == 1 else f"{n} messages"


# ---------------------------------------------------------------- handlers


def list_queue(args: argparse.Namespace, config: Config) -> int:
    if args.limit < 1:
        raise UsageError(f"--limit: {args.limit} is not valid; expected a number from 1 up")
    criteria = _criteria(args)

    async def run(service: QueueService) -> list[MailItem]:
        return await service.list(criteria, limit=args.limit)

    messages, now = _with_service(config, run), SystemClock().now()
    if args.json:
        print_json([as_dict(m, now) for m in messages])
    else:
        print_table([row(m, now) for m in messages], LIST_COLUMNS)
    return 0


def summarize(args: argparse.Namespace, config: Config) -> int:
    criteria = _criteria(args)

    async def run(service: QueueService) -> QueueShape:
        return await service.summary(criteria, args.by, args.top)

    shape = _with_service(config, run)
    if args.json:
        print_json(shape_dict(shape))
    else:
        print_shape(shape)
    return 0


def show_message(args: argparse.Namespace, config: Config) -> int:
    async def run(service: QueueService) -> MailView:
        if args.body:
            return await service.show_body(args.id, _actor(), Role.ADMIN, args.reason)
        return await service.show(args.id)

    view, now = _with_service(config, run), SystemClock().now()
    if args.json:
        out = as_dict(view.item, now) | {"headers": view.headers}
        if view.body is not None:
            out["body"] = view.body
        print_json(out)
        return 0
    print_message(view.item, now, view.headers)
    if view.body is not None:
        print()
        sys.stdout.write(view.body.replace("\r\n", "\n"))
    return 0


def act(args: argparse.Namespace, config: Config) -> int:
    """An action on the ids named (all checked first, audited per id), or on what a filter
    selects (audited once); `retry --all` alone is `flush`."""
    verb: Verb = args.verb
    criteria = _criteria(args)
    if args.ids and (criteria.given() or args.all or args.dry_run):
        raise UsageError(f"queue {verb}: name queue ids or a filter (or --all), not both")
    if not args.ids and not criteria.given() and not args.all:
        options = ", ".join(OPTIONS[f] for f in FILTERS)
        raise UsageError(f"queue {verb}: name queue ids, a filter ({options}), or --all")
    if verb == "retry" and args.all and not criteria.given() and not args.dry_run:
        return flush_queue(args, config)

    async def run(service: QueueService) -> int:
        if args.ids:
            return await service.change(verb, args.ids, _actor(), args.reason)
        return await service.bulk(
            verb, criteria, _actor(), args.reason, everything=args.all, dry_run=args.dry_run
        )

    count = _with_service(config, run)
    if args.dry_run:
        print(f"would be {_DONE[verb]}: {_plural(count)} (dry run: nothing changed)")
    else:
        print(f"{_DONE[verb]} {_plural(count)}")
    return 0


def flush_queue(args: argparse.Namespace, config: Config) -> int:
    async def run(service: QueueService) -> int:
        return await service.flush(_actor(), args.reason)

    print(f"{_DONE['retry']} {_plural(_with_service(config, run))}")
    return 0
