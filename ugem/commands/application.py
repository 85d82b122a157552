"""`ugem application receive|list|show|check|decide`: applications to connect, by hand.

The same operations as `/v1/applications`, through the same calls of
`ugem.core.services.applications.ApplicationService` (wired by
`ugem.commands.wiring`): receipt computes the decision's due date and applies
the thirty-day rule, `check` runs the automatic checks and records the
operator's findings, `decide` connects (creating the connection) or rejects
with reasons, and a decision is mailed to the applicant's contacts through
the node's spool. This module only translates arguments and prints; the
actor in the audit log is `cli:<login name>`. A bad argument is one line
naming the option and what is allowed (exit 2, also when the service finds
it: its field is named as the option); an unknown id exits 1; a conflict
(the domain was rejected less than thirty days ago, a check failed, the
application was decided already) exits 1 with the service's message.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from ugem.cli import add_json_flag, add_show_parser, print_json, print_list
from ugem.commands.connection import (
    actor,
    allowed,
    choice,
    contact_line,
    contacts_of,
    domain_arg,
    moment,
    when,
)
from ugem.commands.wiring import CommandServices, as_options, print_notices, with_services
from ugem.core.config import Config
from ugem.core.errors import UsageError
from ugem.core.model import Connection, Language, OrgKind
from ugem.core.services.applications import (
    OTHER,
    Application,
    ApplicationForm,
    AppState,
    Channel,
    Decision,
    Finding,
)
from ugem.core.times import local_date

LIST_COLUMNS = ["id", "number", "domain", "org", "state", "received", "due", "overdue"]
FIELDS = {  # the service's field -> this command's option
    "number": "--number",
    "domain": "--domain",
    "domain_owner": "--domain-owner",
    "servers": "--server",
    "org_name": "--org",
    "kind": "--kind",
    "contacts": "--contact",
    "reasons": "--reason",
}
FINDING = "a finding is --name NAME --pass|--fail [--note TEXT]"
Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def register(sub: Sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("application", parents=[common], help="applications to connect")
    cmds = p.add_subparsers(dest="application_command", metavar="ACTION", required=True)
    _receive_parser(cmds, common)
    lister = cmds.add_parser("list", parents=[common], help="list applications")
    lister.add_argument("--state", metavar="STATE", help="only this state: " + allowed(AppState))
    lister.add_argument("--overdue", action="store_true", help="only pending ones past due")
    lister.add_argument("--domain", metavar="DOMAIN", help="only this domain's")
    add_json_flag(lister)
    lister.set_defaults(handler=list_applications)
    add_show_parser(cmds, common, "show one application", show_application)
    _check_parser(cmds, common)
    decide = cmds.add_parser("decide", parents=[common], help="connect or reject (mailed)")
    decide.add_argument("id", metavar="ID")
    decide.add_argument("decision", metavar="DECISION", help=allowed(Decision))
    decide.add_argument(
        "--reason",
        action="extend",
        nargs="+",
        default=[],
        metavar="TEXT",
        help="a reason (a rejection needs at least one; repeat for more)",
    )
    decide.set_defaults(handler=decide_application)


def _receive_parser(cmds: Sub, common: argparse.ArgumentParser) -> None:
    add = cmds.add_parser("receive", parents=[common], help="record an application as received")
    add.add_argument("--number", required=True, help="No. of the application")
    add.add_argument(
        "--received-at",
        metavar="TIME",
        help="when received: ISO 8601 (without a zone, Asia/Almaty time) or Unix time; default now",
    )
    add.add_argument("--channel", default=Channel.APS.value, help="how: " + allowed(Channel))
    add.add_argument("--domain", required=True, help="the e-mail domain to connect")
    add.add_argument("--domain-owner", required=True, metavar="NAME", help="the domain's owner")
    add.add_argument(
        "--server",
        action="extend",
        nargs="+",
        required=True,
        metavar="ADDR",
        help="the mail server's IP address(es) or CIDR networks",
    )
    add.add_argument("--org", required=True, metavar="NAME", help="organisation name")
    add.add_argument(
        "--kind", required=True, metavar="KIND", help=f"{allowed(OrgKind)}, or {OTHER}"
    )
    add.add_argument(
        "--contact",
        action="append",
        default=[],
        metavar='"FULL NAME <E-MAIL>"',
        help="a technical specialist: surname, name, patronymic and e-mail (repeat)",
    )
    add.add_argument("--phone", action="append", default=[], metavar="OFFICE",
                     help="office phone of the --contact in the same position")  # fmt: skip
    add.add_argument("--mobile", action="append", default=[], metavar="MOBILE",
                     help="mobile phone of the --contact in the same position")  # fmt: skip
    add.add_argument("--lang", default=Language.RU.value, help="notices: " + allowed(Language))
    add.set_defaults(handler=receive_application)


class _Findings(argparse.Action):
    """Keeps --name, --pass, --fail and --note in the order given (see `findings`)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        value = values if isinstance(values, str) else None
        given = [*getattr(namespace, self.dest, []), (option_string or "", value)]
        setattr(namespace, self.dest, given)


def _check_parser(cmds: Sub, common: argparse.ArgumentParser) -> None:
    check = cmds.add_parser(
        "check",
        parents=[common],
        help="run the automatic checks and record the operator's findings",
        description="Runs the automatic checks (eligible, routable, servers-free, "
        "domain-free, mx) and records the findings given, which override an automatic "
        "check of the same name; " + FINDING + " (repeat for more).",
    )
    check.add_argument("id", metavar="ID")
    check.add_argument(
        "--name", action=_Findings, dest="findings", metavar="NAME", help="a finding's name"
    )
    for flag, text in (("--pass", "it passed"), ("--fail", "it failed")):
        check.add_argument(flag, action=_Findings, dest="findings", nargs=0, help=text)
    check.add_argument("--note", action=_Findings, dest="findings", metavar="TEXT",
                       help="what the operator found")  # fmt: skip
    add_json_flag(check)
    check.set_defaults(handler=check_application, findings=[])


# ---- handlers ---------------------------------------------------------------------------


def receive_application(args: argparse.Namespace, config: Config) -> int:
    form = ApplicationForm(
        number=args.number,
        domain=args.domain,
        domain_owner=args.domain_owner,
        servers=args.server,
        org_name=args.org,
        kind=args.kind.strip().lower(),
        contacts=contacts_of(args.contact, args.phone, args.mobile),
        language=choice(Language, "--lang", args.lang),
        channel=choice(Channel, "--channel", args.channel),
        received_at=None if args.received_at is None else moment("--received-at", args.received_at),
    )

    async def receive(services: CommandServices) -> Application:
        return await services.applications.receive(form, actor())

    with as_options(FIELDS):
        app = with_services(config, receive).result
    print(f"received application {app.id} (No. {app.number}) for {app.domain}: "
          f"decision due {app.decision_due}")  # fmt: skip
    return 0


def list_applications(args: argparse.Namespace, config: Config) -> int:
    state = None if args.state is None else choice(AppState, "--state", args.state)
    domain = None if args.domain is None else domain_arg("--domain", args.domain)

    async def fetch(services: CommandServices) -> list[Shown]:
        found = await services.applications.list(state, args.overdue or None, domain)
        return [shown(a, services) for a in found]

    apps = with_services(config, fetch).result
    print_list(apps, args.json, Shown.to_dict, _row, LIST_COLUMNS)
    return 0


def show_application(args: argparse.Namespace, config: Config) -> int:
    async def fetch(services: CommandServices) -> Shown:
        return shown(await services.applications.get(args.id), services)

    _print(with_services(config, fetch).result, args.json)
    return 0


def check_application(args: argparse.Namespace, config: Config) -> int:
    given = findings(args.findings)

    async def check(services: CommandServices) -> Shown:
        return shown(await services.applications.check(args.id, given, actor()), services)

    _print(with_services(config, check).result, args.json)
    return 0


def decide_application(args: argparse.Namespace, config: Config) -> int:
    decision = choice(Decision, "DECISION", args.decision)

    async def decide(services: CommandServices) -> tuple[Application, Connection | None]:
        return await services.applications.decide(args.id, decision, args.reason, actor())

    with as_options(FIELDS):
        done = with_services(config, decide)
    app, conn = done.result
    outcome = f"connection {conn.id} added" if conn else "; ".join(app.reasons)
    print(f"application {app.id} (No. {app.number}) is {app.state}: {outcome}")
    print_notices(done)
    return 0


# ---- translation ------------------------------------------------------------------------


def findings(given: Sequence[tuple[str, str | None]]) -> list[Finding]:
    """The operator's findings from the options in the order given: each --name starts
    one, the --pass or --fail and the --note after it are its own."""
    found: list[dict[str, Any]] = []
    for option, value in given:
        if option == "--name":
            if not (value or "").strip():
                raise UsageError(f"--name: empty; {FINDING}")
            found.append({"name": (value or "").strip(), "ok": None, "note": ""})
        elif not found:
            raise UsageError(f"{option}: no --name before it; {FINDING}")
        elif option == "--note":
            found[-1]["note"] = (value or "").strip()
        elif found[-1]["ok"] is not None:
            raise UsageError(f"{option}: {found[-1]['name']} has --pass or --fail already")
        else:
            found[-1]["ok"] = option == "--pass"
    for item in found:
        if item["ok"] is None:
            raise UsageError(f"--name {item['name']}: neither --pass nor --fail; {FINDING}")
    return [Finding(f["name"], f["ok"], f["note"]) for f in found]


# ---- output -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """An application and whether it is overdue today (as the API shows it)."""

    app: Application
    overdue: bool

    def to_dict(self) -> dict[str, Any]:
        return self.app.to_dict() | {"overdue": self.overdue}


def shown(app: Application, services: CommandServices) -> Shown:
    return Shown(app, app.overdue(services.applications.today()))


def _print(item: Shown, as_json: bool) -> None:
    if as_json:
        print_json(item.to_dict())
    else:
        print("\n".join(describe(item)))


def _row(item: Shown) -> dict[str, str]:
    app = item.app
    return {
        "id": app.id,
        "number": app.number,
        "domain": app.domain,
        "org": app.org_name,
        "state": app.state.value,
        "received": local_date(app.received_at).isoformat(),
        "due": app.decision_due,
        "overdue": "yes" if item.overdue else "",
    }


def describe(item: Shown) -> list[str]:
    """The human-readable `show`: one field a line, then the checks and the decision."""
    app = item.app
    fields = [
        ("number", f"{app.number} ({app.channel})"),
        ("received", f"{when(app.received_at)} by {app.recorded_by}"),
        ("decision due", app.decision_due + ("  OVERDUE" if item.overdue else "")),
        ("state", app.state.value),
        ("domain", app.domain),
        ("domain owner", app.domain_owner),
        ("organisation", f"{app.org_name} ({app.kind})"),
        ("servers", ", ".join(app.servers)),
        ("language", app.language.value),
        *(("contact", contact_line(c)) for c in app.contacts),
        *(("check", _check_line(f)) for f in app.checks),
    ]
    if app.decided_by:
        fields.append(("decided", f"{when(app.decided_at)} by {app.decided_by}"))
        fields += [("reason", r) for r in app.reasons]
    failed = [f.name for f in app.checks if not f.ok]
    if app.state == AppState.PENDING and failed:
        fields.append(("to connect", "these checks must pass: " + ", ".join(failed)))
    return [app.id, *(f"  {key:<13} {value}" for key, value in fields)]


def _check_line(finding: Finding) -> str:
    verdict = "pass" if finding.ok else "FAIL"
    note = f": {finding.note}" if finding.note else ""
    return f"{verdict}  {finding.name}{note} ({finding.by})"
