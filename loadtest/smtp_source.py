"""Postfix's smtp-source as the comparison's driver: the whole load as one child process.

`source_command(path, shape, port)` is its command line: `-s CONNECTIONS`
sessions in parallel, `-m MESSAGES` in all, `-l` a body that makes the whole
text about `size` bytes (smtp-source adds ~140 bytes of From/To/Date/
Message-Id), `-f SENDER -t RECIPIENT` with `-N` (a fresh number before the
recipient of each message, as the Python driver's distinct recipients),
`-M loadtest.invalid` (its HELO), `-c` (a counter of DATA ends on stdout),
and `-d` unless `per_connection` is 1. How it spreads the messages (from its
source): each session takes the next message from one shared count; without
`-d` it QUITs after each message and connects again (a connection per
message), with `-d` it keeps its connection until the count runs out (about
MESSAGES / CONNECTIONS messages each) — it cannot QUIT after N messages, so
any `per_connection` above 1 means `-d`. It has one connect() pending at a time,
speaks HELO (not EHLO) and never pipelines. It cannot bind a source address:
every session comes from 127.0.0.1. It sends one fixed size and cannot pace.

`check_load(shape, rate)` refuses (UsageError) what it cannot do.
`run_source(shape, port, name)` runs it to its end and times it
(`started_at`/`finished_at`, wall clock) into a `Report`: sent is MESSAGES;
accepted the DATA ends counted when it exits 0 (each had a 2xx: any other reply
makes it stop with exit 1); after a failure the same count is an upper bound
(the sessions in flight had no reply yet) and the rest is failed under
"smtp-source exit N", with its last stderr line. Accept latencies are not
measured: the report's latency is empty (None), never made up. A missing
binary is a `TargetError` naming it; cancelled, it stops smtp-source first.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from loadtest.errors import TargetError, UsageError
from loadtest.generator import LoadShape
from loadtest.processes import find_tool, stop_process
from loadtest.rate import RateSchedule
from loadtest.report import Latency, Report

SENDER = "load@mdai.gov.kz"
RECIPIENT = "user@example.org"
HELO = "loadtest.invalid"
DATE_FIELD = len("Mon, 07 Dec 2026 16:47:53 +0000 (UTC)")  # RFC 2822 date as Postfix writes it


def header_bytes(sender: str = SENDER, recipient: str = RECIPIENT, helo: str = HELO) -> int:
    """Bytes of the header smtp-source writes before its body (and the empty line)."""
    lines = [
        f"From: <{sender}>",
        f"To: <{recipient}>",
        "Date: " + "x" * DATE_FIELD,
        f"Message-Id: <0000.0000.0000@{helo}>",
        "",
    ]
    return sum(len(line) + 2 for line in lines)


def check_load(shape: LoadShape, rate: RateSchedule | None) -> None:
    """UsageError for a load smtp-source cannot send: a size distribution, a rate."""
    if shape.size.kind != "fixed":
        raise UsageError(
            f"--driver smtp-source sends one fixed size, not {shape.size.describe()}: "
            "use --size BYTES"
        )
    if rate is not None:
        raise UsageError("--driver smtp-source cannot pace the load: leave out --rate")


def body_length(shape: LoadShape) -> int:
    """smtp-source's -l: the size less its header, at least 1."""
    return max(1, int(shape.size.a) - header_bytes())


def source_command(path: str, shape: LoadShape, port: int) -> list[str]:
    keep = ["-d"] if shape.per_connection > 1 else []
    return [
        path, "-c", "-N", *keep, "-s", str(shape.connections), "-m", str(shape.messages),
        "-l", str(body_length(shape)), "-f", SENDER, "-t", RECIPIENT, "-M", HELO,
        f"127.0.0.1:{port}",
    ]  # fmt: skip


def sessions(shape: LoadShape) -> int:
    """Sessions smtp-source opens: one per message without -d, else one per slot."""
    if shape.per_connection > 1:
        return min(shape.connections, shape.messages)
    return shape.messages


@dataclass(frozen=True)
class SourceRun:
    report: Report
    exit_status: int
    command: list[str]


async def run_source(shape: LoadShape, port: int, name: str) -> SourceRun:
    """Run smtp-source against 127.0.0.1:`port` to its end; see the module docstring."""
    command = source_command(find_tool("smtp-source"), shape, port)
    started_at = time.time()
    try:
        proc = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
    except OSError as exc:
        raise TargetError(f"{command[0]} did not start: {exc}") from exc
    try:
        out, err = await proc.communicate()
    except BaseException:  # cancelled (SIGINT, SIGTERM): leave no smtp-source behind
        await stop_process(proc)
        raise
    finished_at = time.time()
    status = proc.returncode if proc.returncode is not None else -1
    report = source_report(
        shape, port, name, status, data_ends(out), last_line(err), started_at, finished_at
    )
    return SourceRun(report, status, command)


def data_ends(output: bytes) -> int:
    """The last value of smtp-source's -c counter ("1\\r2\\r...N\\r\\n"); 0 for none."""
    values = [part.strip() for part in output.replace(b"\n", b"\r").split(b"\r")]
    numbers = [int(v) for v in values if v.isdigit()]
    return numbers[-1] if numbers else 0


def last_line(output: bytes) -> str:
    lines = output.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else ""


def source_report(
    shape: LoadShape, port: int, name: str, status: int, ended: int, error: str,
    started_at: float, finished_at: float,
) -> Report:  # fmt: skip
    """The generator's report shape from what smtp-source says (see the module docstring)."""
    elapsed = finished_at - started_at
    accepted = min(ended, shape.messages)
    failed = {f"smtp-source exit {status}": shape.messages - accepted} if status else {}
    return Report(
        target=f"127.0.0.1:{port}",
        run_id=f"{name}-smtp-source",
        connections=shape.connections,
        per_connection=shape.messages if shape.per_connection > 1 else 1,  # -d: no limit
        size=shape.size.describe(),
        rate="as fast as possible",
        sent=shape.messages,
        accepted=accepted,
        refused={},
        failed=failed,  # present (even at 0) whenever it failed: the exit status shows
        failure_examples={k: error for k in failed},
        rcpt_refused={},
        sessions=sessions(shape),
        pipelining=False,
        bytes_accepted=accepted * int(shape.size.a),
        elapsed=elapsed,
        accept_rate=accepted / elapsed if elapsed > 0 else 0.0,
        latency=Latency.of([]),
        started_at=started_at,
        finished_at=finished_at,
    )
