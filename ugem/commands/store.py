"""`ugem store status|restore`: the registry's store against the nodes' copies of it.

Every node keeps the registry it last read in its data dir
(`registry-copy.json`, one per worker: `ugem.core.registry_copy`) and refuses
a store that is empty, of another generation or older than that copy
(`ugem.core.store_trust`), relaying on the copy meanwhile. `status` prints the
store's generation, version and connections, and each copy in the data dir
with what a node holding it makes of the store (takes it, or refuses it and
why); `--json` prints the same as JSON. `restore [--from-copy PATH]
[--force]` writes a copy (by default the freshest in the data dir) back into
the store, with its generation and a version above its own, in one atomic
step, audited as `store.restore` by `cli:<login name>`
(`ugem.core.registry_restore`); the nodes take it at their next probe (a few
seconds). A store that is not behind the copy is refused (exit 1) unless
`--force`. A store that cannot be reached exits 75 (`ugem.cli`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ugem.cli import add_json_flag, print_json, print_table
from ugem.commands.connection import actor, when, with_store
from ugem.core.clock import SystemClock
from ugem.core.config import Config
from ugem.core.registry_copy import RegistryCopy, copy_paths, read_copy
from ugem.core.registry_restore import Restored, freshest, restore, verdict
from ugem.core.store import Store

COPY_COLUMNS = ["copy", "generation", "version", "read", "connections", "store"]


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("store", parents=[common], help="the registry's store and the copies")
    cmds = p.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    status = cmds.add_parser(
        "status", parents=[common], help="the store, and what each copy makes of it"
    )
    add_json_flag(status)
    status.set_defaults(handler=show_status)
    back = cmds.add_parser(
        "restore", parents=[common], help="write a node's registry copy back into the store"
    )
    back.add_argument(
        "--from-copy",
        metavar="PATH",
        type=Path,
        help="the copy to restore (default: the freshest registry-copy*.json in data_dir)",
    )
    back.add_argument(
        "--force", action="store_true", help="restore even a store that is not behind the copy"
    )
    back.set_defaults(handler=restore_store)


def show_status(args: argparse.Namespace, config: Config) -> int:
    copies = [(path, copy) for path in copy_paths(config.data_path) if (copy := read_copy(path))]

    async def look(store: Store) -> dict[str, Any]:
        generation, version = await store.generation()
        rows = []
        for path, copy in copies:
            _, why = await verdict(store, copy)
            rows.append(_copy_row(path, copy) | {"store": why or "taken"})
        found = {"generation": generation, "version": version}
        return found | {"connections": len(await store.list()), "copies": rows}

    found = with_store(config, look)
    if args.json:
        print_json(found)
        return 0
    print(
        f"store: generation {found['generation'] or '(none)'}, version {found['version']}, "
        f"{found['connections']} connections"
    )
    if found["copies"]:
        print_table(found["copies"], COPY_COLUMNS)
    else:
        print(f"no registry copy in {config.data_path}")
    return 0


def _copy_row(path: Path, copy: RegistryCopy) -> dict[str, Any]:
    return {
        "copy": str(path),
        "generation": copy.generation,
        "version": copy.version,
        "read": when(copy.read_at),
        "connections": len(copy.connections),
    }


def restore_store(args: argparse.Namespace, config: Config) -> int:
    paths = [args.from_copy] if args.from_copy else copy_paths(config.data_path)
    path, copy = freshest(paths)

    async def run(store: Store) -> Restored:
        now = SystemClock().now()
        return await restore(store, copy, now, actor(), str(path), args.force)

    done = with_store(config, run)
    print(
        f"restored {done.connections} connections from {path} (generation {done.generation}); "
        f"the store is at version {done.version}"
    )
    if done.why:
        print(f"the store was refused because {done.why}")
    return 0
