"""`ugem token create|list|revoke`: the bearer tokens of the admin API.

`create --name NAME --role viewer|operator|admin` prints the token once (only
its hash is stored; a lost token is revoked and a new one created), on its
first line; with `--replace` a token of that name, live or revoked, is
replaced and its old secret stops working (so a script may run it again and
still get a working token); `list`
shows names, roles and whether revoked, never a secret; `revoke NAME` stops
it at once. All go through `ugem.core.services.tokens.TokenService` and are
audited as `cli:<login>`. A bad name or role exits 2 naming it; a name in use
or a token revoked already exits 1 saying so; an unknown name exits 1.
"""

from __future__ import annotations

import argparse

from ugem.cli import add_json_flag, print_json, print_table
from ugem.commands.connection import actor, when, with_store
from ugem.core.clock import SystemClock
from ugem.core.config import Config
from ugem.core.services.audit import AuditLog
from ugem.core.services.tokens import ApiToken, Role, TokenService
from ugem.core.store import Store

COLUMNS = ["name", "role", "created", "created_by", "revoked"]


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("token", parents=[common], help="manage admin API tokens")
    cmds = p.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = cmds.add_parser("create", parents=[common], help="create a token (printed once)")
    create.add_argument("--name", required=True, metavar="NAME", help="who or what uses it")
    create.add_argument(
        "--role", required=True, metavar="ROLE", help=", ".join(r.value for r in Role)
    )
    create.add_argument(
        "--replace",
        action="store_true",
        help="replace a token of this name, live or revoked (its secret stops working)",
    )
    create.set_defaults(handler=create_token)
    lister = cmds.add_parser("list", parents=[common], help="list tokens (never their secrets)")
    add_json_flag(lister)
    lister.set_defaults(handler=list_tokens)
    revoke = cmds.add_parser("revoke", parents=[common], help="revoke a token at once")
    revoke.add_argument("name", metavar="NAME")
    revoke.add_argument("--reason", default="", metavar="TEXT", help="why (audited)")
    revoke.set_defaults(handler=revoke_token)


def service(store: Store) -> TokenService:
    clock = SystemClock()
    return TokenService(store, AuditLog(store, clock), clock)


def create_token(args: argparse.Namespace, config: Config) -> int:
    async def create(store: Store) -> tuple[ApiToken, str]:
        return await service(store).create(args.name, args.role, actor(), args.replace)

    token, secret = with_store(config, create)
    print(secret)
    print(f"token {token.name} ({token.role}) created; it is shown only this once")
    return 0


def list_tokens(args: argparse.Namespace, config: Config) -> int:
    async def fetch(store: Store) -> list[ApiToken]:
        return await service(store).list()

    tokens = with_store(config, fetch)
    if args.json:
        print_json([t.public() for t in tokens])
        return 0
    rows = [
        {
            "name": t.name,
            "role": t.role.value,
            "created": when(t.created_at),
            "created_by": t.created_by,
            "revoked": when(t.revoked_at) if t.revoked_at else "",
        }
        for t in tokens
    ]
    print_table(rows, COLUMNS)
    return 0


def revoke_token(args: argparse.Namespace, config: Config) -> int:
    async def revoke(store: Store) -> ApiToken:
        return await service(store).revoke(args.name, actor(), args.reason)

    token = with_store(config, revoke)
    print(f"token {token.name} revoked")
    return 0
