"""The `ugem` command: argument parsing, config loading and error reporting.

Each command group lives in its own module under `ugem.commands` and exposes
`register(subparsers, common)`; its handlers take `(args, config)` and return
an exit code. `--config FILE` (or `UGEM_CONFIG`) is accepted before or after
the command's name. Errors the user can fix (`ConfigError`, `UsageError`,
`NotFoundError`, `ConflictError`) print one line naming what was wrong and exit
2 (usage/config) or 1 (the operation failed); a store that cannot be reached
(`StoreError`: Redis down or hung, the SQLite file locked or unreadable)
prints `ugem: store unavailable: ...` and exits EXIT_STORE (75, sysexits'
EX_TEMPFAIL: nothing was changed, try again); output cut short by its reader
(`ugem config check | head`) ends quietly with EXIT_PIPE; nothing prints a
traceback except a real bug. The commands print alike through `print_table`,
`print_json` and `print_list` (a table, or JSON with `--json`), every time as
RFC 3339 in Asia/Almaty with its offset (`ugem.core.times`; in JSON, the numbers
under its `TIME_KEYS`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ugem import __version__
from ugem.core import times
from ugem.core.config import Config, load_config
from ugem.core.errors import (
    ConfigError,
    ConflictError,
    NotFoundError,
    StoreError,
    UgemError,
    UsageError,
)

Handler = Callable[[argparse.Namespace, Config], int]
T = TypeVar("T")
EXIT_PIPE = 141  # the reader of the output went away (128 + SIGPIPE, as a shell reports it)
EXIT_STORE = 75  # the store cannot be reached: try again (EX_TEMPFAIL of sysexits.h)


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="TOML config file (default: $UGEM_CONFIG, else embedded defaults)",
    )
    return common


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or (given `argv`) of the group it names only."""
    from ugem.commands import registers

    common = _common()
    parser = argparse.ArgumentParser(prog="ugem", parents=[common], description="UGEM mail gateway")
    parser.add_argument("--version", action="version", version=f"ugem {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in registers(argv):
        register(sub, common)
    return parser


def config_path(args: argparse.Namespace) -> str | None:
    path: str | None = getattr(args, "config", None) or os.environ.get("UGEM_CONFIG") or None
    return path


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(words)
    args = parser.parse_args(words)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.error(f"{args.command}: a subcommand is required")
    try:
        config = load_config(config_path(args))
        if reads_only(args):
            need_node_data(config)
        code = handler(args, config)
        sys.stdout.flush()  # here, where a reader gone away is answered, not at exit
        return code
    except (ConfigError, UsageError) as exc:
        print(f"ugem: error: {exc}", file=sys.stderr)
        return 2
    except (NotFoundError, ConflictError) as exc:
        print(f"ugem: {exc}", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"ugem: store unavailable: {exc}", file=sys.stderr)
        return EXIT_STORE
    except UgemError as exc:
        print(f"ugem: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `ugem ... | head`: the reader has gone, as it may
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return EXIT_PIPE


# Commands that only read a node's data: run where there is none, they would show an empty
# registry or queue (and create it); they stop instead (`need_node_data`). A command that
# writes (`connection add`, `token create`) may be the first one to create a node's data.
READING = frozenset({"list", "show", "verify", "summary", "search", "status"})
READING_GROUPS = frozenset({"status"})  # commands without actions that only read


def reads_only(args: argparse.Namespace) -> bool:
    """Whether the command line names a command that only reads a node's data."""
    if args.command in READING_GROUPS:
        return True
    if args.command in ("config", "anomaly", "dkim", "reputation"):
        return False  # files, DNS or the config alone
    return getattr(args, f"{args.command}_command", None) in READING


def need_node_data(config: Config) -> None:
    """A node's data on its SQLite store must be there: a command run from another
    directory would otherwise quietly create an empty registry and spool of its own."""
    if config.store.url or config.data_path.is_dir():
        return
    raise UsageError(
        f"node.data_dir: no node data at {config.data_path.resolve()}; run ugem where the "
        "node runs, give --config FILE (a relative data_dir is taken from the file's "
        "directory) or set UGEM_NODE_DATA_DIR; `ugem serve` creates it"
    )


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def add_show_parser(
    cmds: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    help_text: str,
    handler: Handler,
) -> argparse.ArgumentParser:
    """The `show ID [--json]` subcommand of a group, calling `handler`."""
    show = cmds.add_parser("show", parents=[common], help=help_text)
    show.add_argument("id", metavar="ID")
    add_json_flag(show)
    show.set_defaults(handler=handler)
    return show


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain aligned table: one header line, one line per row."""
    widths = {c: max([len(c), *(len(str(r.get(c, ""))) for r in rows)]) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns).rstrip())


def print_json(data: Any) -> None:
    """Indented JSON, non-ASCII text as it is (Kazakh and Russian names stay readable),
    times as RFC 3339 in Asia/Almaty (`ugem.core.times.json_times`)."""
    print(json.dumps(times.json_times(data), ensure_ascii=False, indent=2))


def print_list(
    items: Sequence[T],
    as_json: bool,
    as_dict: Callable[[T], Any],
    row: Callable[[T], dict[str, Any]],
    columns: list[str],
) -> None:
    """What `list` prints: JSON of `as_dict(item)`s, or a table of `row(item)`s."""
    if as_json:
        print_json([as_dict(item) for item in items])
    else:
        print_table([row(item) for item in items], columns)


if __name__ == "__main__":
    sys.exit(main())
