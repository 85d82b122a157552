"""`ugem anomaly replay|evaluate`: run the detector over a recorded or synthetic trace.

`replay TRACE` prints one JSON object a line per action, in trace time, as
../shared/anomaly/TRACE-FORMAT.md specifies, and on stderr the number of
events and the replay speed. `evaluate TRACE LABELS` replays and prints the
score (per incident, false suspensions, totals) as JSON. A trace or labels
file that cannot be read exits 2 with the reason (UsageError).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from anomaly.evaluate import load_labels, report, score
from anomaly.replay import action_line, replay
from anomaly.trace import TraceStats, read_trace
from ugem.config import Config


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


def replay_trace(args: argparse.Namespace, config: Config) -> int:
    stats = TraceStats()
    started = time.perf_counter()
    for verdict in replay(read_trace(args.trace, stats)):
        print(json.dumps(action_line(verdict), ensure_ascii=False), flush=True)
    elapsed = time.perf_counter() - started
    rate = stats.lines / elapsed if elapsed > 0 else 0.0
    print(f"{stats.lines} events in {elapsed:.2f} s ({rate:,.0f} events/s)", file=sys.stderr)
    return 0


def evaluate_trace(args: argparse.Namespace, config: Config) -> int:
    incidents = load_labels(args.labels)
    actions = list(replay(read_trace(args.trace)))
    result = score(incidents, actions, read_trace(args.trace))
    print(json.dumps(report(result), indent=1, ensure_ascii=False))
    return 0
