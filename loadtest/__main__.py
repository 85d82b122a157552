"""`python -m loadtest` and `ugem-loadtest`: the run, sink, compare, idle, restart, sign,
hostile and nodes commands.

    python -m loadtest run HOST:PORT [options]     the generator (report as text or --json)
    python -m loadtest sink [--listen H:P] ...     the counting SMTP sink
    python -m loadtest compare postfix [options]   the same load through Postfix and UGEM
    python -m loadtest idle HOST:PORT [options]    many idle sessions held; the target's memory
    python -m loadtest restart [options]           a gateway restarted over a full queue
    python -m loadtest sign [options]              DKIM signing rate: ugem, dkimpy, OpenSSL
    python -m loadtest hostile [--only big|header|idle] [options]
                                                   large messages, a folded header, idle strangers
    python -m loadtest nodes [options]             one node against two on a shared Redis

`main(argv)` returns the exit code: 0 done, 1 a `LoadtestError` (its message
on stderr) or a run where every message failed (`hostile`: a finding), 2 bad
usage, 130 interrupted, 143 stopped by SIGTERM. Each command's options and behaviour are
in loadtest.commands (`sign`: loadtest.signing); `--help` on each lists them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from loadtest import commands, signing
from loadtest.errors import LoadtestError, UsageError


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="ugem-loadtest",
        description="SMTP load generator, counting sink, side-by-side comparison with Postfix, "
        "idle sessions, restart, DKIM signing and hostile-input benchmarks.",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_run(sub)
    commands.add_sink(sub)
    commands.add_compare(sub)
    commands.add_idle(sub)
    commands.add_restart(sub)
    signing.add_sign(sub)
    commands.add_hostile(sub)
    commands.add_nodes(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except UsageError as exc:
        print(f"ugem-loadtest {args.command}: {exc}", file=sys.stderr)
        return 2
    except LoadtestError as exc:
        print(f"ugem-loadtest {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ugem-loadtest {args.command}: interrupted", file=sys.stderr)
        return 130
    except asyncio.CancelledError:
        print(f"ugem-loadtest {args.command}: stopped by SIGTERM", file=sys.stderr)
        return 143


if __name__ == "__main__":
    sys.exit(main())
