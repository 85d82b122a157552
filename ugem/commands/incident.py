"""`ugem incident list|show|ack|close`: the incidents of connections and of the gateway, by hand.

The same `IncidentService` as `/v1/incidents`, over the configured store:
`list` prints incidents newest first with their kind (connection: the
anomaly detector's; gateway: the gateway's own, an address listed or a burst
of blocklisted replies) (`--state`, `--connection` a connection's id or a
gateway subject, `--limit`; `--json`), `show N` one incident with its
evidence, and for a gateway incident the connections it names, as a person
reads it (or `--json`), `ack N` and `close N` move it on, with an optional
`--comment`, audited as `cli:<login>`. A bad option exits 2 naming it; an unknown number,
or a move that does not fit the state (acknowledging a closed incident),
exits 1 saying who did what and when.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ugem.cli import Handler, add_json_flag, add_show_parser, print_json, print_list
from ugem.commands.connection import actor, allowed, choice, when, with_store
from ugem.core.clock import SystemClock
from ugem.core.config import Config
from ugem.core.errors import UsageError
from ugem.core.services.audit import AuditLog
from ugem.core.services.incidents import Incident, IncidentKind, IncidentService, IncidentState
from ugem.core.store import Store

T = TypeVar("T")
COLUMNS = ["id", "opened", "kind", "connection", "mode", "action", "state", "verdicts", "reason"]
REASON_WIDTH = 70  # characters of the reason in the list


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "incident",
        parents=[common],
        help="incidents of connections (the detector's) and the gateway",
    )
    cmds = p.add_subparsers(dest="incident_command", metavar="ACTION", required=True)
    lister = cmds.add_parser("list", parents=[common], help="incidents, newest first")
    lister.add_argument("--state", help="only this state: " + allowed(IncidentState))
    lister.add_argument(
        "--connection", metavar="ID", help="only this connection's (or gateway subject's)"
    )
    lister.add_argument("--limit", type=int, default=50, help="most incidents (default 50)")
    add_json_flag(lister)
    lister.set_defaults(handler=list_incidents)
    add_show_parser(cmds, common, "show one incident and its evidence", show_incident)
    for verb, help_text in (
        ("ack", "acknowledge an open incident (someone is on it)"),
        ("close", "close an incident (dealt with)"),
    ):
        cmd = cmds.add_parser(verb, parents=[common], help=help_text)
        cmd.add_argument("id", metavar="N", help="the incident's number")
        cmd.add_argument("--comment", default="", metavar="TEXT", help="kept on it, audited")
        cmd.set_defaults(handler=move_handler(verb))


def service(store: Store) -> IncidentService:
    clock = SystemClock()
    return IncidentService(store, AuditLog(store, clock), clock)


def with_incidents(config: Config, action: Callable[[IncidentService], Awaitable[T]]) -> T:
    """Run `action` on the incident service over the configured store."""

    async def run(store: Store) -> T:
        return await action(service(store))

    return with_store(config, run)


def number(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise UsageError(
            f"N: {value!r} is not an incident number; `ugem incident list` shows them"
        ) from None


def list_incidents(args: argparse.Namespace, config: Config) -> int:
    if args.limit < 1:
        raise UsageError(f"--limit: {args.limit} is not valid; expected a number from 1 up")
    state = None if args.state is None else choice(IncidentState, "--state", args.state)

    async def fetch(incidents: IncidentService) -> list[Incident]:
        return await incidents.list(state, args.connection, args.limit)

    found = with_incidents(config, fetch)
    print_list(found, args.json, Incident.to_dict, _row, COLUMNS)
    return 0


def show_incident(args: argparse.Namespace, config: Config) -> int:
    ident = number(args.id)

    async def fetch(incidents: IncidentService) -> Incident:
        return await incidents.get(ident)

    incident = with_incidents(config, fetch)
    if args.json:
        print_json(incident.to_dict())
    else:
        print("\n".join(describe(incident)))
    return 0


def move_handler(verb: str) -> Handler:
    """The handler of `ack` or `close`."""

    def handler(args: argparse.Namespace, config: Config) -> int:
        ident = number(args.id)

        async def move(incidents: IncidentService) -> Incident:
            if verb == "ack":
                return await incidents.acknowledge(ident, actor(), args.comment)
            return await incidents.close(ident, actor(), args.comment)

        incident = with_incidents(config, move)
        print(f"incident {incident.id} ({incident.connection}) is {incident.state}")
        return 0

    return handler


def _row(incident: Incident) -> dict[str, object]:
    reason = incident.reason
    if len(reason) > REASON_WIDTH:
        reason = reason[: REASON_WIDTH - 3] + "..."
    return {
        "id": incident.id,
        "opened": when(incident.opened_at),
        "kind": incident.kind.value,
        "connection": incident.connection,
        "mode": incident.mode.value,
        "action": incident.action.value,
        "state": incident.state.value,
        "verdicts": incident.verdicts,
        "reason": reason,
    }


def describe(incident: Incident) -> list[str]:
    """The human-readable `show`: one field a line, then each verdict's findings."""
    fields = [
        ("kind", incident.kind.value),
        ("state", incident.state.value),
        ("opened", when(incident.opened_at)),
        ("mode", f"{incident.mode.value} ({incident.action.value})"),
        ("verdicts", f"{incident.verdicts}, the last at {when(incident.last_verdict_at)}"),
    ]
    if incident.acknowledged_at is not None:
        by = f"{incident.acknowledged_by} at {when(incident.acknowledged_at)}"
        fields.append(("acknowledged", by))
    if incident.closed_at is not None:
        fields.append(("closed", f"{incident.closed_by} at {when(incident.closed_at)}"))
    if incident.comment:
        fields.append(("comment", incident.comment))
    fields += _gateway_fields(incident)
    lines = [f"incident {incident.id}  {incident.connection}"]
    lines += [f"  {key:<13} {value}" for key, value in fields]
    if incident.kind == IncidentKind.GATEWAY:
        lines.append("  suspects      (the connections whose mail left the gateway before it)")
        lines += [f"    {n}. {s.line()}" for n, s in enumerate(incident.suspects, 1)] or [
            "    none"
        ]
    lines.append("  evidence (the first verdict and the latest; the numbers of the first and last)")
    last = len(incident.evidence) - 1
    for i, item in enumerate(incident.evidence):
        lines.append(f"    {when(item.ts)}  {item.action.value}")
        lines += [f"      {finding}" for finding in item.findings]
        lines += [f"        {line}" for line in item.lines()] if i in (0, last) else []
    return lines


def _gateway_fields(incident: Incident) -> list[tuple[str, str]]:
    """What a gateway incident is about: its addresses, the zone, the lists named."""
    if incident.kind != IncidentKind.GATEWAY:
        return []
    fields = [("addresses", ", ".join(incident.addresses) or "-")]
    if incident.zone:
        fields.append(("zone", incident.zone))
    return [*fields, ("blocklists", ", ".join(incident.blocklists) or "none named")]
