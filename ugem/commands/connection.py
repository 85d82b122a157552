"""`ugem connection add|list|show|suspend|resume|disconnect|cancel-disconnect`: by hand.

Every subcommand opens the store named by the config (`[store] url`, by
default the SQLite file in the data dir), does one thing and closes it; a node
using the same store sees the change on its next SMTP command. Adding and
state changes go through `ugem.core.services.connections.ConnectionService`, the
same service as the admin API (wired by `ugem.commands.wiring`), so they are
audited with the actor `cli:<login name>`, a change that does not fit the
state (suspending a suspended connection) or a server another connection has
is refused alike, and each change is mailed to the organisation: the notice
is committed into the node's spool and printed with its queue id (one that
cannot be queued is a warning on stderr; the change stands). `disconnect
--effective-at TIME` (ISO 8601, Asia/Almaty time without a zone, or Unix
time) schedules the disconnection as the API's `effective_at` does, and
`cancel-disconnect` cancels it. Arguments are checked before anything is
written: a bad one is a one-line `UsageError` naming the option and what is
allowed (exit 2); an unknown id is a `NotFoundError` (exit 1); an id, domain
or server that is taken is a `ConflictError` naming its owner (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import ipaddress
import re
from collections.abc import Awaitable, Callable, Sequence
from enum import StrEnum
from typing import TypeVar

import idna

from ugem.cli import Handler, add_json_flag, add_show_parser, print_json, print_list
from ugem.commands.wiring import CommandServices, as_options, print_notices, with_services
from ugem.core import times
from ugem.core.clock import SystemClock
from ugem.core.config import Config
from ugem.core.errors import NotFoundError, UsageError
from ugem.core.model import Connection, ConnState, Contact, Language, OrgKind
from ugem.core.names import canonical_domain, canonical_network
from ugem.core.store import Store, open_store
from ugem.core.store.base import AuditEntry

E = TypeVar("E", bound=StrEnum)

LIST_COLUMNS = ["id", "org", "kind", "state", "domains", "servers"]
FIELDS = {"reason": "--reason", "effective_at": "--effective-at"}  # service field -> option
HISTORY = 10
_CONTACT = re.compile(r"^\s*(?P<name>[^<>]*?)\s*<(?P<email>[^<>\s]+)>\s*$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ().\-]{4,30}$")


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("connection", parents=[common], help="manage connected organisations")
    cmds = p.add_subparsers(dest="connection_command", metavar="ACTION", required=True)
    _add_parser(cmds, common)
    lister = cmds.add_parser("list", parents=[common], help="list connections")
    lister.add_argument("--state", help="only this state: " + allowed(ConnState))
    add_json_flag(lister)
    lister.set_defaults(handler=list_connections)
    add_show_parser(cmds, common, "show one connection and its history", show_connection)
    for verb, state, help_text in (
        ("suspend", ConnState.SUSPENDED, "refuse its mail with 451 and hold its queue"),
        ("resume", ConnState.CONNECTED, "accept its mail again and release its queue"),
        ("disconnect", ConnState.DISCONNECTED, "remove it from the relay (kept for the record)"),
    ):
        cmd = cmds.add_parser(verb, parents=[common], help=help_text)
        cmd.add_argument("id", metavar="ID")
        cmd.add_argument(
            "--reason",
            required=state == ConnState.SUSPENDED,
            default="",
            metavar="TEXT",
            help="why (written to the audit log and the notice)",
        )
        if state == ConnState.DISCONNECTED:
            cmd.add_argument(
                "--effective-at",
                metavar="TIME",
                help="when, as agreed with the organisation: ISO 8601 (without a zone, "
                "Asia/Almaty time) or Unix time; absent or past: now",
            )
        cmd.set_defaults(handler=state_handler(state))
    cancel = cmds.add_parser(
        "cancel-disconnect", parents=[common], help="cancel a scheduled disconnection"
    )
    cancel.add_argument("id", metavar="ID")
    cancel.add_argument("--reason", default="", metavar="TEXT", help="why (audit log)")
    cancel.set_defaults(handler=cancel_disconnect)


def _add_parser(
    cmds: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    add = cmds.add_parser("add", parents=[common], help="connect an organisation")
    add.add_argument("id", metavar="ID", help="its primary mail domain")
    add.add_argument("--org", required=True, metavar="NAME", help="organisation name")
    add.add_argument("--kind", required=True, metavar="KIND", help=allowed(OrgKind))
    add.add_argument(
        "--domain",
        action="extend",
        nargs="+",
        default=[],
        metavar="DOMAIN",
        help="its mail domains (ID is always one)",
    )
    add.add_argument(
        "--server",
        action="extend",
        nargs="+",
        required=True,
        metavar="ADDR",
        help="its mail servers: IPv4/IPv6 addresses or CIDR networks",
    )
    add.add_argument(
        "--contact",
        action="append",
        default=[],
        metavar='"NAME <E-MAIL>"',
        help="a contact person (repeat for more)",
    )
    add.add_argument(
        "--phone",
        action="append",
        default=[],
        metavar="OFFICE",
        help="office phone of the contact in the same position",
    )
    add.add_argument(
        "--mobile",
        action="append",
        default=[],
        metavar="MOBILE",
        help="mobile phone of the contact in the same position",
    )
    add.add_argument(
        "--lang",
        default=Language.RU.value,
        metavar="LANG",
        help="language of notices: " + allowed(Language),
    )
    add.set_defaults(handler=add_connection)


# ---- handlers ---------------------------------------------------------------------------


def add_connection(args: argparse.Namespace, config: Config) -> int:
    now = SystemClock().now()
    conn = Connection(
        id=_ident(args.id),
        org_name=_text("--org", args.org),
        kind=choice(OrgKind, "--kind", args.kind),
        domains=tuple(domain_arg("--domain", d) for d in args.domain),
        servers=tuple(_server(s) for s in args.server),
        contacts=contacts_of(args.contact, args.phone, args.mobile),
        language=choice(Language, "--lang", args.lang),
        created_at=now,
        state_changed_at=now,
    )

    async def add(services: CommandServices) -> None:
        await services.connections.add(conn, actor())

    with_services(config, add)
    print(f"added connection {conn.id} ({conn.org_name}): {conn.state}")
    return 0


def list_connections(args: argparse.Namespace, config: Config) -> int:
    state = None if args.state is None else choice(ConnState, "--state", args.state)
    conns = [c for c in with_store(config, _all) if state is None or c.state == state]
    print_list(conns, args.json, Connection.to_dict, _row, LIST_COLUMNS)
    return 0


def show_connection(args: argparse.Namespace, config: Config) -> int:
    ident = _ident(args.id)

    async def fetch(store: Store) -> tuple[Connection | None, list[AuditEntry]]:
        return await store.get(ident), await store.audit_log(ident, HISTORY)

    conn, history = with_store(config, fetch)
    if conn is None:
        raise NotFoundError(f"no connection {ident!r}; `ugem connection list` shows them")
    if args.json:
        print_json(conn.to_dict())
    else:
        print("\n".join(describe(conn, history)))
    return 0


def state_handler(state: ConnState) -> Handler:
    """The handler of `suspend`, `resume` or `disconnect`: set `state`, audited."""

    def handler(args: argparse.Namespace, config: Config) -> int:
        ident = _ident(args.id)
        reason = args.reason.strip()
        if state == ConnState.SUSPENDED and not reason:
            raise UsageError("--reason: empty; say why the connection is suspended")
        effective_at = getattr(args, "effective_at", None)
        at = None if effective_at is None else moment("--effective-at", effective_at)

        async def change(services: CommandServices) -> Connection:
            conns = services.connections
            if state == ConnState.SUSPENDED:
                return await conns.suspend(ident, reason, actor())
            if state == ConnState.CONNECTED:
                return await conns.resume(ident, reason, actor())
            return await conns.disconnect(ident, reason, actor(), at)

        with as_options(FIELDS):
            done = with_services(config, change)
        print(state_line(done.result, reason))
        print_notices(done)
        return 0

    return handler


def cancel_disconnect(args: argparse.Namespace, config: Config) -> int:
    ident, reason = _ident(args.id), args.reason.strip()

    async def cancel(services: CommandServices) -> Connection:
        return await services.connections.cancel_disconnect(ident, reason, actor())

    done = with_services(config, cancel)
    print(f"connection {done.result.id}: scheduled disconnection cancelled")
    print_notices(done)
    return 0


def state_line(conn: Connection, reason: str) -> str:
    """'connection X is S: reason', or the disconnection scheduled for it."""
    if conn.disconnect is not None:
        at = when(conn.disconnect.at)
        return f"connection {conn.id} is {conn.state}; disconnection scheduled for {at}"
    return f"connection {conn.id} is {conn.state}" + (f": {reason}" if reason else "")


# ---- helpers ----------------------------------------------------------------------------

T = TypeVar("T")


def with_store(config: Config, action: Callable[[Store], Awaitable[T]]) -> T:
    """Open the configured store, run `action` on it, close it."""

    async def run() -> T:
        store = open_store(config.store_url)
        try:
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(run())


async def _all(store: Store) -> list[Connection]:
    return await store.list()


def actor() -> str:
    """`cli:<login name>`, the actor of the audit entries this command writes."""
    try:
        return "cli:" + getpass.getuser()
    except (OSError, KeyError):
        return "cli:unknown"


def allowed(kind: type[StrEnum]) -> str:
    return ", ".join(m.value for m in kind)


def choice(kind: type[E], option: str, value: str) -> E:
    try:
        return kind(value.strip().lower())
    except ValueError:
        raise UsageError(f"{option}: {value!r} is not one of {allowed(kind)}") from None


def moment(option: str, value: str) -> float:
    """A time given as RFC 3339 / ISO 8601 (without an offset, Asia/Almaty time) or Unix
    time, as Unix time (`ugem.core.times.parse`)."""
    try:
        return times.parse(value)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _text(option: str, value: str) -> str:
    if not value.strip():
        raise UsageError(f"{option}: empty; give a name")
    return value.strip()


def domain_arg(option: str, value: str) -> str:
    try:
        return canonical_domain(value)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}; expected a domain like example.gov.kz") from None


def _ident(value: str) -> str:
    return domain_arg("ID", value)


def _server(value: str) -> str:
    try:
        return str(canonical_network(value))
    except ValueError as exc:
        raise UsageError(
            f"--server: {exc}; expected an IPv4/IPv6 address or CIDR "
            "network like 192.0.2.10, 2001:db8::25 or 198.51.100.0/24"
        ) from None


def _phone(option: str, value: str) -> str:
    if not _PHONE.match(value.strip()):
        raise UsageError(
            f"{option}: {value!r} is not a phone number; expected digits with "
            '+, spaces, dashes or brackets, like "+7 7172 74-00-00"'
        )
    return value.strip()


def contacts_of(
    people: Sequence[str], phones: Sequence[str], mobiles: Sequence[str]
) -> tuple[Contact, ...]:
    """Contacts from `--contact`; the nth `--phone` and `--mobile` are the nth contact's."""
    for option, values in (("--phone", phones), ("--mobile", mobiles)):
        if len(values) > len(people):
            raise UsageError(
                f"{option}: {len(values)} given for {len(people)} --contact; "
                f"the nth {option} belongs to the nth --contact"
            )
    return tuple(
        _contact(person, _nth(phones, i, "--phone"), _nth(mobiles, i, "--mobile"))
        for i, person in enumerate(people)
    )


def _nth(values: Sequence[str], index: int, option: str) -> str:
    return _phone(option, values[index]) if index < len(values) else ""


def _contact(value: str, phone: str, mobile: str) -> Contact:
    match = _CONTACT.match(value)
    if match is None or not match["name"]:
        raise UsageError(f'--contact: {value!r} is not "Full Name <e-mail>"')
    try:
        return Contact(match["name"], match["email"], phone, mobile)
    except UsageError as exc:
        raise UsageError(f"--contact: {value!r}: {exc}") from None


# ---- output -----------------------------------------------------------------------------


def _row(conn: Connection) -> dict[str, str]:
    return {
        "id": conn.id,
        "org": conn.org_name,
        "kind": conn.kind.value,
        "state": conn.state.value,
        "domains": ",".join(conn.domains),
        "servers": ",".join(server_label(s) for s in conn.servers),
    }


def server_label(server: str) -> str:
    """A host as its address ("192.0.2.10", not "192.0.2.10/32"); a network as CIDR."""
    net = ipaddress.ip_network(server)
    return str(net.network_address) if net.num_addresses == 1 else str(net)


def domain_label(domain: str) -> str:
    """An IDN domain with its Unicode form beside the ASCII one."""
    if "xn--" not in domain:
        return domain
    try:
        return f"{domain} ({idna.decode(domain)})"
    except idna.IDNAError:
        return domain


def when(ts: float) -> str:
    """A moment as the CLI shows it: RFC 3339 in Asia/Almaty; "-" for none (0)."""
    return times.rfc3339(ts) if ts else "-"


def describe(conn: Connection, history: Sequence[AuditEntry]) -> list[str]:
    """The human-readable `show`: one field a line, then the latest audit entries."""
    state = f"{conn.state} since {when(conn.state_changed_at)}"
    fields = [
        ("organisation", conn.org_name),
        ("kind", conn.kind.value),
        ("state", state + (f": {conn.state_reason}" if conn.state_reason else "")),
        ("language", conn.language.value),
        ("domains", ", ".join(domain_label(d) for d in conn.domains)),
        ("servers", ", ".join(server_label(s) for s in conn.servers)),
        *(("contact", contact_line(c)) for c in conn.contacts),
        *((key, value) for key, value in sorted(conn.extra.items())),
        ("created", when(conn.created_at)),
    ]
    if conn.disconnect is not None:
        plan = conn.disconnect
        fields.append(("disconnect at", f"{when(plan.at)} by {plan.by}"))
        fields += [("  because", plan.reason)] if plan.reason else []
    lines = [conn.id, *(f"  {key:<13} {value}" for key, value in fields)]
    if history:
        lines.append("  history (newest first)")
        lines += [
            f"    {when(e.ts)}  {e.actor}  {e.action}" + (f"  {e.reason}" if e.reason else "")
            for e in history
        ]
    return lines


def contact_line(contact: Contact) -> str:
    parts = [f"{contact.full_name} <{contact.email}>"]
    parts += [f"office {contact.office_phone}"] if contact.office_phone else []
    parts += [f"mobile {contact.mobile}"] if contact.mobile else []
    return ", ".join(parts)
