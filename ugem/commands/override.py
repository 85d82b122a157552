"""`ugem override list|show|ceiling|exempt|cancel`: per-connection overrides of the detector.

The same `OverrideService` as `/v1/overrides`, over the configured store.
`ceiling CONN --until T [--from T] --messages-per-hour N
[--recipients-per-hour N] --reason TEXT` raises the traffic a planned mass
mailing may reach before the detector's verdict is acted on; `exempt CONN
(--until T | --permanent) [--from T] --reason TEXT` means the connection is
never suspended (its verdicts still open incidents); `cancel ID` ends one
now. Times are ISO 8601 (Asia/Almaty without a zone) or Unix time. `list`
shows them newest first (`--connection`, `--current`: only those not ended;
`--json`), `show ID` one. Changes are audited as `cli:<login>`. A bad option
exits 2 naming it; an unknown connection or override, an overlap with
another override, or cancelling one that ended exits 1 saying why.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ugem.cli import add_json_flag, add_show_parser, print_json, print_list
from ugem.commands.connection import actor, moment, when, with_store
from ugem.commands.wiring import as_options
from ugem.core.clock import SystemClock
from ugem.core.config import Config
from ugem.core.services.audit import AuditLog
from ugem.core.services.overrides import Override, OverrideKind, OverrideRequest, OverrideService
from ugem.core.store import Store

T = TypeVar("T")
COLUMNS = ["id", "connection", "kind", "from", "until", "ceiling", "state", "reason"]
OPTIONS = {
    "starts_at": "--from",
    "ends_at": "--until",
    "permanent": "--permanent",
    "max_messages_per_hour": "--messages-per-hour",
    "max_recipients_per_hour": "--recipients-per-hour",
    "reason": "--reason",
}


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "override", parents=[common], help="per-connection overrides of the anomaly detector"
    )
    cmds = p.add_subparsers(dest="override_command", metavar="ACTION", required=True)
    lister = cmds.add_parser("list", parents=[common], help="overrides, newest start first")
    lister.add_argument("--connection", metavar="ID", help="only this connection's")
    lister.add_argument("--current", action="store_true", help="only those not ended")
    add_json_flag(lister)
    lister.set_defaults(handler=list_overrides)
    add_show_parser(cmds, common, "show one override", show_override)
    ceiling = _set_parser(cmds, common, OverrideKind.CEILING, "a planned mass mailing's ceiling")
    ceiling.add_argument("--until", required=True, metavar="TIME", help="when it ends")
    ceiling.add_argument("--messages-per-hour", type=int, metavar="N", help="messages in 60 min")
    ceiling.add_argument("--recipients-per-hour", type=int, metavar="N", help="their recipients")
    exempt = _set_parser(cmds, common, OverrideKind.EXEMPT, "never suspend the connection")
    end = exempt.add_mutually_exclusive_group(required=True)
    end.add_argument("--until", metavar="TIME", help="when it ends")
    end.add_argument("--permanent", action="store_true", help="no end (cancel it by hand)")
    cancel = cmds.add_parser("cancel", parents=[common], help="end an override now")
    cancel.add_argument("id", metavar="ID")
    cancel.add_argument("--reason", default="", metavar="TEXT", help="why (audited)")
    cancel.set_defaults(handler=cancel_override)


def _set_parser(
    cmds: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    kind: OverrideKind,
    help_text: str,
) -> argparse.ArgumentParser:
    cmd = cmds.add_parser(kind.value, parents=[common], help=help_text)
    cmd.add_argument("connection", metavar="CONNECTION")
    cmd.add_argument("--from", dest="starts_at", metavar="TIME", help="when it starts (now)")
    cmd.add_argument("--reason", required=True, metavar="TEXT", help="why (audited)")
    cmd.set_defaults(handler=set_override, kind=kind)
    return cmd


def with_overrides(config: Config, action: Callable[[OverrideService], Awaitable[T]]) -> T:
    """Run `action` on the override service over the configured store."""

    async def run(store: Store) -> T:
        clock = SystemClock()
        return await action(OverrideService(store, AuditLog(store, clock), clock))

    return with_store(config, run)


def list_overrides(args: argparse.Namespace, config: Config) -> int:
    async def fetch(overrides: OverrideService) -> list[tuple[Override, float]]:
        now = overrides.clock.now()
        return [(o, now) for o in await overrides.list(args.connection, args.current)]

    found = with_overrides(config, fetch)
    print_list(found, args.json, lambda pair: pair[0].to_dict(), _row, COLUMNS)
    return 0


def show_override(args: argparse.Namespace, config: Config) -> int:
    async def fetch(overrides: OverrideService) -> Override:
        return await overrides.get(args.id)

    override = with_overrides(config, fetch)
    if args.json:
        print_json(override.to_dict())
    else:
        print(override.describe())
    return 0


def set_override(args: argparse.Namespace, config: Config) -> int:
    until = getattr(args, "until", None)
    request = OverrideRequest(
        connection=args.connection,
        kind=args.kind,
        reason=args.reason,
        starts_at=None if args.starts_at is None else moment("--from", args.starts_at),
        ends_at=None if until is None else moment("--until", until),
        permanent=getattr(args, "permanent", False),
        max_messages_per_hour=getattr(args, "messages_per_hour", None),
        max_recipients_per_hour=getattr(args, "recipients_per_hour", None),
    )

    async def add(overrides: OverrideService) -> Override:
        return await overrides.set(request, actor())

    with as_options(OPTIONS):
        override = with_overrides(config, add)
    print(f"set {override.describe()}")
    return 0


def cancel_override(args: argparse.Namespace, config: Config) -> int:
    async def cancel(overrides: OverrideService) -> Override:
        return await overrides.cancel(args.id, actor(), args.reason)

    override = with_overrides(config, cancel)
    print(f"override {override.id} of {override.connection} cancelled")
    return 0


def _row(pair: tuple[Override, float]) -> dict[str, object]:
    override, now = pair
    ceiling = override.ceiling() if override.kind == OverrideKind.CEILING else "-"
    return {
        "id": override.id,
        "connection": override.connection,
        "kind": override.kind.value,
        "from": when(override.starts_at),
        "until": "permanent" if override.ends_at is None else when(override.ends_at),
        "ceiling": ceiling,
        "state": override.status(now),
        "reason": override.reason,
    }
