"""`ugem dkim keygen|rotate|drop|list`: the DKIM keys that sign outbound mail.

`keygen DOMAIN [--selector S] [--ed25519]` writes a domain's first key pair
(RSA-2048, plus Ed25519 for dual signing) into the key directory
(`ugem.dkim_keys`, private keys mode 0600) and prints the DNS TXT records to
publish, in zone-file form. `rotate DOMAIN [--selector S]` adds a new
generation that signs from then on and keeps the old ones, which
`drop DOMAIN SELECTOR` deletes (never the active one). `list` shows every
selector. A running node picks a new active selector up with the next message.
Errors: a bad domain or selector exits 2; a selector in use, the active one
dropped, or an unknown domain or selector exits 1 saying so.
"""

from __future__ import annotations

import argparse

from ugem.cli import add_json_flag, print_list
from ugem.commands.connection import when
from ugem.config import Config
from ugem.dkim_keys import KeySet, KeyStore, SelectorInfo, dns_records, key_path

COLUMNS = ["domain", "selector", "algorithms", "active", "created"]
TXT_CHUNK = 255  # a TXT character-string holds at most 255 octets


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("dkim", parents=[common], help="manage DKIM signing keys")
    cmds = p.add_subparsers(dest="dkim_command", metavar="ACTION", required=True)
    keygen = cmds.add_parser("keygen", parents=[common], help="create a domain's first key pair")
    keygen.add_argument("domain", metavar="DOMAIN")
    keygen.add_argument("--selector", default="", metavar="S", help="default: s<YYYYMMDD>")
    keygen.add_argument("--ed25519", action="store_true", help="add an Ed25519 key (dual signing)")
    keygen.set_defaults(handler=keygen_cmd)
    rotate = cmds.add_parser("rotate", parents=[common], help="add a new selector that signs")
    rotate.add_argument("domain", metavar="DOMAIN")
    rotate.add_argument("--selector", default="", metavar="S", help="default: s<YYYYMMDD>")
    rotate.add_argument(
        "--ed25519",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with an Ed25519 key (default: as the selector it replaces)",
    )
    rotate.set_defaults(handler=rotate_cmd)
    drop = cmds.add_parser("drop", parents=[common], help="delete a selector no longer active")
    drop.add_argument("domain", metavar="DOMAIN")
    drop.add_argument("selector", metavar="SELECTOR")
    drop.set_defaults(handler=drop_cmd)
    lister = cmds.add_parser("list", parents=[common], help="list the selectors of every domain")
    add_json_flag(lister)
    lister.set_defaults(handler=list_cmd)


def zone_lines(keys: KeySet) -> list[str]:
    """The records as zone-file lines, long values split into 255-octet strings."""
    lines = []
    for name, value in dns_records(keys):
        chunks = [value[i : i + TXT_CHUNK] for i in range(0, len(value), TXT_CHUNK)]
        lines.append(f"{name}. IN TXT " + " ".join(f'"{c}"' for c in chunks))
    return lines


def _announce(keys: KeySet, what: str) -> None:
    print(f"{what} DKIM selector {keys.selector} of {keys.domain}; it signs from now on.")
    print("Publish in DNS:")
    for line in zone_lines(keys):
        print(line)


def keygen_cmd(args: argparse.Namespace, config: Config) -> int:
    store = KeyStore(key_path(config))
    selector = args.selector or store.free_selector(args.domain)
    _announce(store.keygen(args.domain, selector, args.ed25519), "created")
    return 0


def rotate_cmd(args: argparse.Namespace, config: Config) -> int:
    store = KeyStore(key_path(config))
    keys = store.rotate(args.domain, args.selector, args.ed25519)
    _announce(keys, "rotated to")
    print("The older selectors stay published until `ugem dkim drop DOMAIN SELECTOR`.")
    return 0


def drop_cmd(args: argparse.Namespace, config: Config) -> int:
    KeyStore(key_path(config)).drop(args.domain, args.selector)
    print(f"dropped DKIM selector {args.selector} of {args.domain}; remove its DNS record")
    return 0


def _row(info: SelectorInfo) -> dict[str, str]:
    return {
        "domain": info.domain,
        "selector": info.selector,
        "algorithms": "rsa-sha256+ed25519-sha256" if info.ed25519 else "rsa-sha256",
        "active": "yes" if info.active else "",
        "created": when(info.created),
    }


def _as_dict(info: SelectorInfo) -> dict[str, object]:
    return {
        "domain": info.domain,
        "selector": info.selector,
        "ed25519": info.ed25519,
        "active": info.active,
        "created": info.created,
    }


def list_cmd(args: argparse.Namespace, config: Config) -> int:
    rows = KeyStore(key_path(config)).selectors()
    print_list(rows, args.json, _as_dict, _row, COLUMNS)
    return 0
