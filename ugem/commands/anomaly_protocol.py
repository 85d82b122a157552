"""`ugem anomaly protocol`: judge the detector on the fixed seed sets of anomaly.protocol.

`ugem anomaly protocol [--sets tune,holdout,loko,public|all] [--cache DIR]
[--jobs N] [--public DIR] [--defaults] [--json | --markdown]` simulates the
traces of the sets asked for that are not in the cache (DIR, default
var/anomaly-protocol; `--jobs` at a time), calibrates the detector's
thresholds on each set's tuning traces (anomaly.calibrate; `--defaults` judges
the default thresholds instead), replays the detector over each (in `--jobs`
processes) and prints the report: per set and per abuse kind, detections,
times to detect, leaked recipients, false suspensions (with what the
connection was doing), throttles, the replay's speed, and the totals against
the issue's targets. Plain text by default; `--json` one JSON object;
`--markdown` tables for BENCHMARKS.md. `--save FILE` also keeps the whole
report, `--load FILE` prints a kept one again (in any form) without running
anything.
Progress goes to stderr. The held-out seeds are not for tuning (see
anomaly/protocol.py). Exits 0 with the report whatever the numbers; 2 with the
reason for an unknown set, a cache that cannot be written or a missing public
week (UsageError).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from anomaly.protocol import (
    CALIBRATED,
    CURRENT,
    DEFAULT_CACHE,
    DESIGN,
    SET_NAMES,
    Cache,
    load_report,
    parse_sets,
    render_markdown,
    render_text,
    run,
    save_report,
    stderr_progress,
)
from anomaly.replay import default_jobs
from ugem.core.config import Config


def register_protocol(
    cmds: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    jobs: Callable[[str], int],
) -> None:
    """Add `protocol` to `ugem anomaly`; `jobs` parses --jobs (as replay's does)."""
    pro = cmds.add_parser(
        "protocol",
        parents=[common],
        help="judge the detector on the fixed tuning, held-out and leave-one-kind-out sets",
        epilog=f"sets: {', '.join(SET_NAMES)}; all (the default) is every one",
    )
    pro.add_argument(
        "--sets", default="all", metavar="S1,S2", help="the sets to run (default %(default)s)"
    )
    pro.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_CACHE,
        metavar="DIR",
        help="where simulated traces are kept and reused (default %(default)s)",
    )
    pro.add_argument(
        "--jobs",
        type=jobs,
        default=default_jobs(),
        metavar="N",
        help="processes for simulating and replaying (default: the cores, %(default)s)",
    )
    pro.add_argument(
        "--public",
        type=Path,
        default=DESIGN.public,
        metavar="DIR",
        help="where week-a and week-b are (default: ../shared/anomaly/public of the repository)",
    )
    pro.add_argument(
        "--save", type=Path, metavar="FILE", help="also write the whole report to FILE (JSON)"
    )
    pro.add_argument(
        "--load",
        type=Path,
        metavar="FILE",
        help="print a report --save wrote instead of running (other options but the form ignored)",
    )
    pro.add_argument(
        "--defaults",
        action="store_true",
        help="judge the detector's default thresholds instead of calibrating them on the"
        " tuning traces of each set (faster: no tuning trace is replayed)",
    )
    form = pro.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print the report as JSON")
    form.add_argument("--markdown", action="store_true", help="print tables for BENCHMARKS.md")
    pro.set_defaults(handler=protocol_command)


def protocol_command(args: argparse.Namespace, config: Config) -> int:
    if args.load is not None:
        report = load_report(args.load)
    else:
        sets = parse_sets(args.sets)
        design = dataclasses.replace(DESIGN, public=args.public)
        method = CURRENT if args.defaults else CALIBRATED
        report = run(
            sets, Cache(args.cache), args.jobs, method, design=design, progress=stderr_progress
        )
    if args.save is not None:
        save_report(report, args.save)
    if args.json:
        print(json.dumps(report.as_json(), indent=1, ensure_ascii=False))
    elif args.markdown:
        print(render_markdown(report))
    else:
        print(render_text(report))
    return 0
