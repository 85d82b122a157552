"""`ugem reputation check|complaints|classify`: blocklists, complaints, remote replies.

`check` looks every address of `[node] public_addresses` up on every zone of
`[reputation] dnsbl_zones` now, through `[delivery]`'s resolver (the same
`ReputationService` a node's watch and `/v1/reputation` use, over the
relay's DNSBL lookups), and prints one line per address and zone: the state
(listed, clear, unusable: the list answered an error code instead of a
verdict, unknown: no answer in time), since when, the codes answered and the
list's reason (or why there is no verdict); `--json` prints the report with
`/v1/reputation`'s fields and every standing (`/v1/reputation/standings`' items).
A command's check knows no earlier one: `since` is this check's time (a running
node keeps the history: `/v1/reputation`).

Exit codes: 0 when every address is clear on every list; 1 when any address
is listed anywhere; 3 when none is listed but some list gave no verdict
(unusable or unknown: the check could not tell); 2 for a configuration
without addresses or zones, or another bad value (naming the key).

`complaints` lists the feedback-loop complaints the gateway kept (mail to
`[reputation] fbl_address`, from the configured store: every node's), newest
first, through the same `ComplaintService` as `/v1/reputation/complaints`:
`--connection ID` (an empty ID: the ones not traced), `--since TIME` (RFC 3339
or ISO 8601, Asia/Almaty time without an offset, or Unix time), `--limit N` (50
by default, at most 1000) and `--cursor C` (the next page, as the last one
said); a table (number, time, connection and how it was traced, feedback type,
format, reporter, queue id, evidence) and a line with how many were received,
are kept and were dropped beyond the cap, or with `--json` the answer of
`/v1/reputation/complaints` (`admin.schemas.ComplaintsOut`). Exit 0; 2 for a
bad option (naming it).

`classify` (ugem.commands.reply_classify) shows the class a remote reply gets,
or measures what classifying costs.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from typing import Any

from admin.schemas import ComplaintsOut
from ugem.adapters.reputation import reputation_service
from ugem.cli import add_json_flag, print_json, print_table
from ugem.commands import reply_classify
from ugem.commands.connection import moment, when, with_store
from ugem.core.clock import SystemClock
from ugem.core.config import Config
from ugem.core.errors import UsageError
from ugem.core.paging import MAX_LIMIT, Page
from ugem.core.services.complaints import Complaint, ComplaintService, Tally
from ugem.core.services.reputation import Report, Standing
from ugem.core.store import Store

COLUMNS = ["address", "zone", "state", "since", "codes", "reason"]
COMPLAINT_COLUMNS = [
    "id", "received", "connection", "by", "type", "format", "reporter", "queue_id", "evidence",
]  # fmt: skip
CLEAR, LISTED, UNDECIDED = 0, 1, 3  # exit codes (2: ugem.cli's, for config and usage errors)
REASON_WIDTH = 80  # characters of the reason in the table
REPORTER_WIDTH = 40  # characters of a complaint's reporter in the table


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "reputation", parents=[common], help="the gateway's addresses on the DNS blocklists"
    )
    cmds = p.add_subparsers(dest="reputation_command", metavar="ACTION", required=True)
    check = cmds.add_parser(
        "check",
        parents=[common],
        help="look every public address up on every blocklist now (exit 1: listed)",
    )
    add_json_flag(check)
    check.set_defaults(handler=check_cmd)
    complaints = cmds.add_parser(
        "complaints",
        parents=[common],
        help="feedback-loop complaints received at [reputation] fbl_address, newest first",
    )
    complaints.add_argument(
        "--connection", metavar="ID", help="only those traced to ID (empty: the untraced)"
    )
    complaints.add_argument(
        "--since", metavar="TIME", help="only those received at or after TIME (ISO 8601 or Unix)"
    )
    complaints.add_argument(
        "--limit", type=int, default=50, help=f"most complaints (default 50, most {MAX_LIMIT})"
    )
    complaints.add_argument("--cursor", help="the page after the one whose next cursor this is")
    add_json_flag(complaints)
    complaints.set_defaults(handler=complaints_cmd)
    reply_classify.add_parser(cmds, common)


def exit_code(report: Report) -> int:
    """0 all clear, 1 listed somewhere, 3 nothing listed but some list gave no verdict."""
    if report.listed:
        return LISTED
    return CLEAR if report.complete else UNDECIDED


def _row(standing: Standing) -> dict[str, str]:
    reason = standing.reason.replace("\n", " ")
    cut = reason if len(reason) <= REASON_WIDTH else reason[: REASON_WIDTH - 3] + "..."
    return {
        "address": standing.address,
        "zone": standing.zone,
        "state": standing.state.value.upper(),
        "since": when(standing.since),
        "codes": ",".join(standing.codes) or "-",
        "reason": cut,
    }


def as_dict(report: Report, interval: float) -> dict[str, Any]:
    """The report in `/v1/reputation`'s form (a command does not watch: `watching` false)."""
    return {
        "watching": False,
        "interval": interval,
        "addresses": list(report.addresses),
        "zones": list(report.zones),
        "last_check": report.last_check,
        "listed": report.listed,
        "standings": [
            dataclasses.asdict(s) | {"codes": list(s.codes), "state": s.state.value}
            for s in report.standings
        ],
    }


def check_cmd(args: argparse.Namespace, config: Config) -> int:
    service = reputation_service(config, SystemClock(), announce=False)  # it prints them
    report = asyncio.run(service.check())
    if args.json:
        print_json(as_dict(report, config.reputation.interval))
    else:
        print_table([_row(s) for s in report.standings], COLUMNS)
    return exit_code(report)


def complaints_cmd(args: argparse.Namespace, config: Config) -> int:
    if not 1 <= args.limit <= MAX_LIMIT:
        raise UsageError(f"--limit: {args.limit} is not valid; expected 1 to {MAX_LIMIT}")
    since = None if args.since is None else moment("--since", args.since)

    async def fetch(store: Store) -> tuple[Tally, Page[Complaint]]:
        service = ComplaintService(store, SystemClock())
        found = await service.page(args.connection, since, args.limit, args.cursor)
        return await service.tally(), found

    tally, page = with_store(config, fetch)
    if args.json:
        print_json(ComplaintsOut.of(tally, page).model_dump(mode="json"))
    else:
        print_table([_complaint_row(c) for c in page.items], COMPLAINT_COLUMNS)
        print(
            f"{tally.kept} kept of {tally.received} received "
            f"({tally.dropped} dropped: the newest {tally.cap} are kept)"
        )
        if page.next_cursor is not None:
            print(f"{page.total} match; the next page: --cursor {page.next_cursor}")
    return 0


def _complaint_row(complaint: Complaint) -> dict[str, object]:
    return {
        "id": complaint.id,
        "received": when(complaint.received_at),
        "connection": complaint.connection or "-",
        "by": complaint.attributed_by.value,
        "type": complaint.feedback_type,
        "format": complaint.format.value,
        "reporter": _cut(complaint.reporter, REPORTER_WIDTH) or "-",
        "queue_id": complaint.queue_id or "-",
        "evidence": _cut(complaint.evidence, REASON_WIDTH),
    }


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
