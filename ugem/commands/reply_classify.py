"""`ugem reputation classify`: what class a remote reply gets, and what classifying costs.

`classify CODE TEXT` prints the class the node gives a delivery reply of
`CODE` with `TEXT` (ugem.core.reply_class, through `[reputation]
reply_patterns` when set, so an operator can try a table before a node reads
it): the class, the blocklist it names, whether it is temporary, and the code
the anomaly detector counts it as; `--json` prints the same as an object.
`classify --bench CORPUS` measures the cost of one classification instead:
every reply of a TOML file of `[[reply]]` tables with `code` and `text` (the
tests' corpus of real replies is one: tests/unit/data/reply_corpus.toml) is
classified `REPEAT` times in a row, the best of `ROUNDS` rounds kept, and
the mean, median, 90th percentile and slowest cost per reply are printed in
microseconds (one core, the packaged or configured table). Exit 0; 2 for a
bad table or corpus (naming it) or a missing CODE/TEXT.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tomllib
from pathlib import Path
from typing import Any

from ugem.cli import add_json_flag, print_json
from ugem.core.config import Config
from ugem.core.errors import UsageError
from ugem.core.reply_class import Patterns, classify, configured_patterns, counted_code

REPEAT = 2000  # classifications of one reply in a round
ROUNDS = 5  # rounds; the fastest is kept (the others met other work)


def add_parser(
    cmds: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """The `classify` action of `ugem reputation`."""
    p = cmds.add_parser(
        "classify",
        parents=[common],
        help="the class of a remote reply (or --bench: the cost of classifying one)",
    )
    p.add_argument("code", nargs="?", type=int, help="the reply code, e.g. 550")
    p.add_argument("text", nargs="?", help="the reply text, e.g. '5.7.1 blocked using ...'")
    p.add_argument("--bench", metavar="CORPUS", type=Path, help="time every reply of CORPUS")
    add_json_flag(p)
    p.set_defaults(handler=classify_cmd)


def classify_cmd(args: argparse.Namespace, config: Config) -> int:
    patterns = configured_patterns(config.reputation.reply_patterns)
    if args.bench is not None:
        found = bench(corpus(args.bench), patterns)
        if args.json:
            print_json(found)
        else:
            print("  ".join(f"{k} {v}" for k, v in found.items()))
        return 0
    if args.code is None or args.text is None:
        raise UsageError("classify: give CODE and TEXT, or --bench CORPUS")
    said = classify(args.code, args.text, patterns)
    shown = {
        "class": said.cls,
        "blocklist": said.blocklist,
        "temporary": said.temporary,
        "counted": counted_code(args.code, args.text),
    }
    if args.json:
        print_json(shown)
    else:
        print("  ".join(f"{k} {v}" for k, v in shown.items()))
    return 0


def corpus(path: Path) -> list[tuple[int, str]]:
    """The (code, text) of every `[[reply]]` of the TOML file at `path`; UsageError if none."""
    try:
        entries = tomllib.loads(path.read_text(encoding="utf-8")).get("reply", [])
        replies = [(int(e["code"]), str(e["text"])) for e in entries]
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise UsageError(f"--bench: {path}: {exc}") from exc
    if not replies:
        raise UsageError(f"--bench: {path} has no [[reply]] tables with code and text")
    return replies


def bench(replies: list[tuple[int, str]], patterns: Patterns) -> dict[str, Any]:
    """Microseconds per classification of each reply (best of ROUNDS), summarised."""
    costs = sorted(_cost(code, text, patterns) for code, text in replies)
    return {
        "replies": len(costs),
        "mean_us": round(statistics.fmean(costs), 2),
        "median_us": round(statistics.median(costs), 2),
        "p90_us": round(costs[int(0.9 * (len(costs) - 1))], 2),
        "max_us": round(costs[-1], 2),
    }


def _cost(code: int, text: str, patterns: Patterns) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        began = time.perf_counter()
        for _ in range(REPEAT):
            classify(code, text, patterns)
        best = min(best, time.perf_counter() - began)
    return best / REPEAT * 1e6
