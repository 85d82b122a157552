"""`ugem anomaly replay|evaluate`: run the detector over a recorded or synthetic trace.

`replay TRACE` prints one JSON object a line per action, in trace time, as
../shared/anomaly/TRACE-FORMAT.md specifies, and on stderr the number of
events, the wall time and the CPU time (this process and its workers) of the
replay, not of the command's start-up, and the speeds. `evaluate TRACE
LABELS` replays and prints the score (per incident, false suspensions,
totals) as JSON. `--jobs N` splits the connections across N processes
(default: the cores available); the actions are the same for any N. A trace
or labels file that cannot be read exits 2 with the reason (UsageError).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from anomaly.evaluate import load_labels, report, score
from anomaly.replay import action_line, default_jobs, replay_file
from anomaly.trace import TraceStats, read_trace
from ugem.config import Config


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


def evaluate_trace(args: argparse.Namespace, config: Config) -> int:
    incidents = load_labels(args.labels)
    with _batch_memory():
        actions = replay_file(args.trace, args.jobs)
        result = score(incidents, actions, read_trace(args.trace))
    print(json.dumps(report(result), indent=1, ensure_ascii=False))
    return 0
