"""Streaming reader of a traffic trace (../shared/anomaly/TRACE-FORMAT.md).

`read_trace(path)` yields one small record per line of a `.jsonl` or
`.jsonl.gz` file, in file order, without loading the file: `Accepted` for a
message taken, `Outcome` for one delivery attempt to one recipient (its kind
one of DELIVERED, DEFERRED, BOUNCED). Unknown fields are ignored; a line with
an unknown `event` is skipped, with one warning per event name and a count in
`TraceStats`. A line that is not JSON or lacks a required field raises
`UsageError` naming the file and line; a file that cannot be read or
decompressed raises `UsageError` too. Parsing is orjson, line by line, over
1 MiB chunks; an event's fields are picked by one `itemgetter` call.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

import orjson

from ugem.errors import UsageError
from ugem.log import event

log = logging.getLogger("anomaly.trace")

DELIVERED, DEFERRED, BOUNCED = 1, 2, 3
OUTCOME_KINDS = {"delivered": DELIVERED, "deferred": DEFERRED, "bounced": BOUNCED}
_CHUNK = 1 << 20


class Accepted(NamedTuple):
    ts: float
    connection: str
    ip: str
    sender: str
    rcpts: list[str]


class Outcome(NamedTuple):
    ts: float
    connection: str
    ip: str
    kind: int  # DELIVERED, DEFERRED or BOUNCED
    rcpt: str
    code: int


TraceEvent = Accepted | Outcome


@dataclass
class TraceStats:
    lines: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def _chunks(path: Path) -> Iterator[list[bytes]]:
    """The file's lines, a list per chunk read, gunzipped when the name ends in `.gz`."""
    inflate = zlib.decompressobj(47) if path.suffix == ".gz" else None
    rest = b""
    try:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                lines = (rest + (inflate.decompress(chunk) if inflate else chunk)).split(b"\n")
                rest = lines.pop()
                yield lines
    except (OSError, zlib.error) as exc:
        raise UsageError(f"{path}: cannot read the trace: {exc}") from exc
    if rest:
        yield [rest]


_ACCEPTED = itemgetter("ts", "connection", "ip", "sender", "rcpts")
_OUTCOME = itemgetter("ts", "connection", "ip", "event", "rcpt", "code")


def read_trace(path: Path, stats: TraceStats | None = None) -> Iterator[TraceEvent]:
    """Each event of the trace at `path`, in order; see the module docstring."""
    stats = stats if stats is not None else TraceStats()
    loads, kinds, new = orjson.loads, OUTCOME_KINDS, tuple.__new__  # skips NamedTuple's __new__
    accepted, outcome = _ACCEPTED, _OUTCOME
    first = 1
    for lines in _chunks(path):
        for number, line in enumerate(lines, first):
            try:
                d = loads(line)
                name = d["event"]
                if name == "accepted":
                    yield new(Accepted, accepted(d))
                elif name in kinds:
                    d["event"] = kinds[name]
                    yield new(Outcome, outcome(d))
                else:
                    _skip(path, number, str(name), stats)
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                if not line.strip():
                    continue  # a blank line
                raise UsageError(f"{path}:{number}: not a trace event: {exc!r}") from exc
        first += len(lines)
        stats.lines = _last_event_line(lines, first, stats.lines)


def _last_event_line(lines: list[bytes], after: int, previous: int) -> int:
    """The number of the last non-blank line of a chunk ending before line `after`."""
    for back, line in enumerate(reversed(lines), 1):
        if line.strip():
            return after - back
    return previous


def _skip(path: Path, number: int, name: str, stats: TraceStats) -> None:
    seen = stats.skipped.get(name, 0)
    stats.skipped[name] = seen + 1
    if not seen:
        event(
            log,
            "trace_unknown_event",
            logging.WARNING,
            file=str(path),
            line=number,
            event_name=name,
        )
