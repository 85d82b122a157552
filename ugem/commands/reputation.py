"""`ugem reputation check [--json]`: are the gateway's addresses on the public DNS blocklists?

`check` looks every address of `[node] public_addresses` up on every zone of
`[reputation] dnsbl_zones` now, through `[delivery]`'s resolver (the same
`ReputationService` a node's watch and `/v1/reputation` use, over the
relay's DNSBL lookups), and prints one line per address and zone: the state
(listed, clear, unusable: the list answered an error code instead of a
verdict, unknown: no answer in time), since when, the codes answered and the
list's reason (or why there is no verdict); `--json` prints the report in
the form of `/v1/reputation`. A command's check knows no earlier one: `since`
is this check's time (a running node keeps the history: `/v1/reputation`).

Exit codes: 0 when every address is clear on every list; 1 when any address
is listed anywhere; 3 when none is listed but some list gave no verdict
(unusable or unknown: the check could not tell); 2 for a configuration
without addresses or zones, or another bad value (naming the key).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from typing import Any

from ugem.adapters.reputation import reputation_service
from ugem.cli import add_json_flag, print_json, print_table
from ugem.commands.connection import when
from ugem.core.clock import SystemClock
from ugem.core.config import Config
from ugem.core.services.reputation import Report, Standing

COLUMNS = ["address", "zone", "state", "since", "codes", "reason"]
CLEAR, LISTED, UNDECIDED = 0, 1, 3  # exit codes (2: ugem.cli's, for config and usage errors)
REASON_WIDTH = 80  # characters of the reason in the table


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
