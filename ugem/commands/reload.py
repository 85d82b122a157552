"""`ugem reload [--json]`: a running node takes its changed configuration file.

Sends SIGHUP to every running worker of the node whose data directory the
config names (the workers' status files in `<data_dir>/run`, as `ugem status`
reads them), then waits up to `WAIT_S` seconds for each one's answer in its
status file: the keys it applied, the keys that need a restart (what they
are: `ugem.reload`), or why the file was refused (a bad value, named; the
worker then runs on as it was). Prints one line a worker (`--json`: the
answers). Exit 0 when every worker answered and took the file, 1 when none
runs, one did not answer, or the file was refused.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path
from typing import Any, Final

from ugem.cli import add_json_flag, print_json
from ugem.core.config import Config
from ugem.core.errors import UgemError
from ugem.core.runtime import RUN_DIR, WorkerState, read_workers

WAIT_S: Final = 10.0  # seconds to wait for every worker's answer
POLL_S: Final = 0.1


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "reload", parents=[common], help="make the running node take its changed config file"
    )
    add_json_flag(p)
    p.set_defaults(handler=reload)


def reload(args: argparse.Namespace, config: Config) -> int:
    run_dir = config.data_path / RUN_DIR
    workers = [w for w in read_workers(run_dir, time.time()).found if w.running]
    if not workers:
        raise UgemError(f"no running node in {run_dir} (node.data_dir); nothing to reload")
    sent = time.time()
    for worker in workers:
        os.kill(worker.pid, signal.SIGHUP)
    indexes = sorted({w.worker for w in workers})
    answers = _answers(run_dir, set(indexes), sent)
    if args.json:
        print_json({str(i): answers.get(i) for i in indexes})
    else:
        for index in indexes:
            print(f"worker {index}: {_describe(answers.get(index))}")
    ok = len(answers) == len(indexes) and not any(a["error"] for a in answers.values())
    return 0 if ok else 1


def _answers(run_dir: Path, workers: set[int], sent: float) -> dict[int, dict[str, Any]]:
    """Each worker's answer to the reload sent at `sent`, as its status file gives it."""
    deadline = time.monotonic() + WAIT_S
    found: dict[int, dict[str, Any]] = {}
    while len(found) < len(workers) and time.monotonic() < deadline:
        for state in read_workers(run_dir, time.time()).found:
            if state.worker in workers and (answer := _answer(state, sent)) is not None:
                found[state.worker] = answer
        time.sleep(POLL_S)
    return found


def _answer(state: WorkerState, sent: float) -> dict[str, Any] | None:
    answer = state.reload
    return answer if answer is not None and answer.get("at", 0) >= sent else None


def _describe(answer: dict[str, Any] | None) -> str:
    if answer is None:
        return f"no answer within {WAIT_S:g} s"
    if answer["error"]:
        return f"refused, nothing changed: {answer['error']}"
    applied = ", ".join(answer["applied"]) or "nothing changed"
    line = f"applied: {applied}"
    if answer["restart"]:
        line += f"; needs a restart (kept as it was): {', '.join(answer['restart'])}"
    return line
