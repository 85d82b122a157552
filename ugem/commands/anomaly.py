"""`ugem anomaly replay|evaluate|simulate`: run the detector over a trace, or make one.

`replay TRACE` prints one JSON object a line per action, in trace time, as
../shared/anomaly/TRACE-FORMAT.md specifies, and on stderr the number of
events, the wall time and the CPU time (this process and its workers) of the
replay, not of the command's start-up, and the speeds. `evaluate TRACE
LABELS` replays and prints the score (per incident, false suspensions,
totals) as JSON. `--jobs N` splits the connections across N processes
(default: the cores available); the actions are the same for any N. A trace
or labels file that cannot be read exits 2 with the reason (UsageError).
`simulate --out PREFIX` writes a labelled synthetic trace, PREFIX.jsonl.gz and
PREFIX.labels.json (anomaly.simulate), the same bytes for the same options;
an option out of its bounds exits 2 naming it and what is allowed.
`protocol` (ugem/commands/anomaly_protocol.py) judges the detector on the
fixed seed sets of anomaly/protocol.py.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from anomaly.evaluate import load_labels, report, score
from anomaly.replay import action_line, default_jobs, replay_file
from anomaly.simulate import (
    DEFAULT_PER_WEEK,
    DEFAULT_START,
    KIND_NAMES,
    SimOptions,
    simulate,
    split_kinds,
)
from anomaly.trace_reader import TraceStats, read_trace
from ugem.commands.anomaly_protocol import register_protocol
from ugem.core.config import Config
from ugem.core.errors import UsageError


def _jobs(text: str) -> int:
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes (1 or more)")
    return jobs


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("anomaly", parents=[common], help="replay and evaluate the detector")
    cmds = p.add_subparsers(dest="anomaly_command", metavar="ACTION", required=True)
    rep = cmds.add_parser("replay", parents=[common], help="print the detector's actions")
    rep.add_argument("trace", type=Path, metavar="TRACE.jsonl[.gz]")
    rep.set_defaults(handler=replay_trace)
    ev = cmds.add_parser("evaluate", parents=[common], help="replay and score against labels")
    ev.add_argument("trace", type=Path, metavar="TRACE.jsonl[.gz]")
    ev.add_argument("labels", type=Path, metavar="LABELS.json")
    ev.set_defaults(handler=evaluate_trace)
    for cmd in (rep, ev):
        cmd.add_argument(
            "--jobs",
            type=_jobs,
            default=default_jobs(),
            metavar="N",
            help="processes to split the connections across (default: the cores, %(default)s)",
        )
    _register_simulate(cmds, common)
    register_protocol(cmds, common, _jobs)


def _register_simulate(
    cmds: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    sim = cmds.add_parser(
        "simulate",
        parents=[common],
        help="write a labelled synthetic trace (normal and abuse)",
        epilog=f"kinds of abuse: {', '.join(KIND_NAMES)}",
    )
    sim.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="PREFIX",
        help="writes PREFIX.jsonl.gz and PREFIX.labels.json",
    )
    sim.add_argument("--seed", default="1", metavar="N", help="0 or more (default 1)")
    sim.add_argument("--connections", default="60", metavar="C", help="1 .. 2000 (default 60)")
    sim.add_argument("--days", default="7", metavar="D", help="1 .. 120 (default 7)")
    sim.add_argument(
        "--start",
        default=DEFAULT_START.isoformat(),
        metavar="YYYY-MM-DD",
        help="the first day, Asia/Almaty (default %(default)s)",
    )
    sim.add_argument("--kinds", metavar="K1,K2", help="only these kinds of abuse")
    sim.add_argument("--exclude-kinds", metavar="K1,K2", help="every kind of abuse but these")
    sim.add_argument(
        "--incidents-per-week",
        default=str(DEFAULT_PER_WEEK),
        metavar="X",
        help="incidents a week per 100 connections (default %(default)s)",
    )
    sim.add_argument("--no-abuse", action="store_true", help="normal traffic only")
    sim.set_defaults(handler=simulate_trace)


def _cpu_seconds() -> float:
    """CPU time (user and system) of this process and of its workers that ended."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@contextlib.contextmanager
def _batch_memory() -> Iterator[None]:
    """A replay makes millions of small objects without cycles, freed by reference counting:
    the cycle collector is paused meanwhile, and the objects of the command's start-up are
    frozen, so that neither the collector nor the forked workers' copied pages walk them."""
    was_enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.unfreeze()


def replay_trace(args: argparse.Namespace, config: Config) -> int:
    stats = TraceStats()
    started, cpu = time.perf_counter(), _cpu_seconds()
    with _batch_memory():
        verdicts = replay_file(args.trace, args.jobs, stats)
    for verdict in verdicts:
        print(json.dumps(action_line(verdict), ensure_ascii=False))
    elapsed, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    print(
        f"{stats.events} events in {elapsed:.2f} s ({_per(stats.events, elapsed)} events/s),"
        f" {cpu:.2f} s CPU ({_per(stats.events, cpu)} events per CPU-second), --jobs {args.jobs}",
        file=sys.stderr,
    )
    return 0


def _per(events: int, seconds: float) -> str:
    return f"{events / seconds:,.0f}" if seconds > 0 else "-"


def _number(text: str, option: str, kind: type[int] | type[float]) -> float:
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise UsageError(f"{option}: {text!r} is not {what}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise UsageError(f"{option}: {text!r} is not a finite number")
    return value


def simulate_options(args: argparse.Namespace) -> SimOptions:
    """The options of `simulate` as typed, checked (UsageError naming the option)."""
    try:
        start = dt.date.fromisoformat(args.start)
    except ValueError:
        raise UsageError(f"--start: {args.start!r} is not a date YYYY-MM-DD") from None
    kinds = KIND_NAMES if args.kinds is None else split_kinds(args.kinds, "--kinds")
    excluded = args.exclude_kinds
    exclude = () if excluded is None else split_kinds(excluded, "--exclude-kinds")
    options = SimOptions(
        seed=int(_number(args.seed, "--seed", int)),
        connections=int(_number(args.connections, "--connections", int)),
        days=int(_number(args.days, "--days", int)),
        start=start,
        kinds=kinds,
        exclude=exclude,
        per_week=_number(args.incidents_per_week, "--incidents-per-week", float),
        abuse=not args.no_abuse,
    )
    options.check()
    return options


def simulate_trace(args: argparse.Namespace, config: Config) -> int:
    options = simulate_options(args)
    with _batch_memory():
        summary = simulate(options, args.out)
    print(
        f"{summary.trace}: {summary.events} events of {summary.connections} connections"
        f" over {summary.days} days; {summary.labels}: {summary.incidents} incidents;"
        f" {summary.seconds:.1f} s"
    )
    return 0


def evaluate_trace(args: argparse.Namespace, config: Config) -> int:
    incidents = load_labels(args.labels)
    with _batch_memory():
        actions = replay_file(args.trace, args.jobs)
        result = score(incidents, actions, read_trace(args.trace))
    print(json.dumps(report(result), indent=1, ensure_ascii=False))
    return 0
