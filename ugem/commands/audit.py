"""`ugem audit list|verify`: read the audit log and check its hash chain.

`list` prints entries newest first (filters: `--target`, `--actor`,
`--action`; `--limit`); `verify` walks the whole chain and exits 0 when it is
whole, printing the number of entries and the head hash (keep it elsewhere:
a later verify that shows a different history from that head is proof of a
rewrite), or exits 1 listing every record that was edited, inserted or
deleted. A store that cannot be read exits 1 with the reason.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from ugem.cli import add_json_flag, print_json, print_table
from ugem.commands.connection import when, with_store
from ugem.core.clock import SystemClock
from ugem.core.config import Config
from ugem.core.errors import UsageError
from ugem.core.services.audit import AuditLog, Verdict
from ugem.core.store import Store
from ugem.core.store.base import AuditRecord

COLUMNS = ["seq", "when", "actor", "action", "target", "reason"]


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("audit", parents=[common], help="read and verify the audit log")
    cmds = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    lister = cmds.add_parser("list", parents=[common], help="entries, newest first")
    lister.add_argument("--target", metavar="ID", help="only entries about this target")
    lister.add_argument("--actor", metavar="WHO", help="only entries by this actor")
    lister.add_argument("--action", metavar="ACTION", help="only this action")
    lister.add_argument("--limit", type=int, default=50, help="most entries (default 50)")
    add_json_flag(lister)
    lister.set_defaults(handler=list_audit)
    verify = cmds.add_parser("verify", parents=[common], help="check the hash chain")
    add_json_flag(verify)
    verify.set_defaults(handler=verify_audit)


def _log(store: Store) -> AuditLog:
    return AuditLog(store, SystemClock())


def list_audit(args: argparse.Namespace, config: Config) -> int:
    if args.limit < 1:
        raise UsageError(f"--limit: {args.limit} is not valid; expected a number from 1 up")

    async def fetch(store: Store) -> list[AuditRecord]:
        return await _log(store).list(args.target, args.limit, None, args.actor, args.action)

    records = with_store(config, fetch)
    if args.json:
        print_json([{"seq": r.seq, "hash": r.hash, **asdict(r.entry)} for r in records])
        return 0
    rows = [{"seq": r.seq, "when": when(r.entry.ts)} | asdict(r.entry) for r in records]
    print_table(rows, COLUMNS)
    return 0


def verify_audit(args: argparse.Namespace, config: Config) -> int:
    async def verify(store: Store) -> Verdict:
        return await _log(store).verify()

    verdict = with_store(config, verify)
    if args.json:
        print(json.dumps(asdict(verdict) | {"ok": verdict.ok}, indent=2))
    elif verdict.ok:
        print(f"audit log intact: {verdict.entries} entries, head {verdict.head_hash}")
    else:
        print(f"audit log BROKEN: {len(verdict.problems)} problem(s)")
        for problem in verdict.problems:
            print(f"  {problem}")
    return 0 if verdict.ok else 1
