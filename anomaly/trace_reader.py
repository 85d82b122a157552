"""Streaming reader of a traffic trace (../shared/anomaly/TRACE-FORMAT.md).

`read_trace(path)` yields one small record per line of a `.jsonl` or
`.jsonl.gz` file, in file order, without loading the file: `Accepted` for a
message taken, an `Outcome` (`Delivered`, `Deferred` or `Bounced`, its `kind`
DELIVERED, DEFERRED or BOUNCED) for one delivery attempt to one recipient.
`read_blocks(path)` yields the same records a list per block of lines. A
record holds what the detector and the scorer use: an outcome's `rcpt` (to
tell which message it answers), an accepted message's `ip` and `size`; unknown
fields are not read. A line with an unknown
`event` is skipped, with one warning per event name and a count in
`TraceStats`. A line that is not JSON, lacks a field the record holds or has
one of the wrong type raises `UsageError` naming the file and line; a file
that cannot be read or decompressed raises `UsageError` too.

Speed: a gzipped file is inflated by ISA-L (isal, zlib's format, about three
times zlib's speed); a block of about 16 KB of lines is decoded by one msgspec
call into typed records (no dict per line), small enough that its records are
still in the core's cache when the caller reads them (with blocks of 1 MB a
replay lost time to cache misses); only a block with an unknown event or a
bad line is decoded again line by line, to skip the one or name the other
(lines are counted only from then on: see `read_blocks`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, ClassVar, cast

import msgspec
from isal import isal_zlib

from ugem.core.errors import UsageError
from ugem.core.log import event

log = logging.getLogger(__name__)

DELIVERED, DEFERRED, BOUNCED = 1, 2, 3
_GZ_CHUNK = 1 << 11  # compressed bytes read at once (about 16 KB of lines)
_PLAIN_CHUNK = 1 << 14
_GZIP = 16 + 15  # zlib's wbits for a gzip stream
_INFLATE_ERROR = cast("type[Exception]", isal_zlib.error)  # its stub has an instance


class Accepted(msgspec.Struct, tag_field="event", tag="accepted", gc=False):
    ts: float
    connection: str
    sender: str
    rcpts: list[str]
    ip: str = ""  # the connected server's address (a backlog is one server's)
    size: int = 0


class Outcome(msgspec.Struct, tag_field="event", gc=False):
    """One delivery attempt; the subclass (its tag) says which kind."""

    ts: float
    connection: str
    code: int
    rcpt: str = ""  # the recipient ("" where a trace leaves it out)
    kind: ClassVar[int] = 0


class Delivered(Outcome, tag="delivered"):
    kind: ClassVar[int] = DELIVERED


class Deferred(Outcome, tag="deferred"):
    kind: ClassVar[int] = DEFERRED


class Bounced(Outcome, tag="bounced"):
    kind: ClassVar[int] = BOUNCED


TraceEvent = Accepted | Outcome
EVENT_NAMES = frozenset({"accepted", "delivered", "deferred", "bounced"})
_DECODER = msgspec.json.Decoder(Accepted | Delivered | Deferred | Bounced)


@dataclass
class TraceStats:
    events: int = 0  # events read, the skipped ones included
    skipped: dict[str, int] = field(default_factory=dict)


def _inflated(path: Path) -> Iterator[bytes]:
    """The file's bytes in pieces, gunzipped when the name ends in `.gz`."""
    try:
        with path.open("rb") as f:
            if path.suffix == ".gz":
                yield from _gunzipped(f)
            else:
                while chunk := f.read(_PLAIN_CHUNK):
                    yield chunk
    except (OSError, EOFError, _INFLATE_ERROR) as exc:
        raise UsageError(f"{path}: cannot read the trace: {exc}") from exc


def _gunzipped(f: BinaryIO) -> Iterator[bytes]:
    """Every gzip member of `f`, inflated; EOFError if the last one is cut short."""
    inflate = isal_zlib.decompressobj(_GZIP)
    while chunk := f.read(_GZ_CHUNK):
        yield inflate.decompress(chunk)
        while inflate.eof and inflate.unused_data:  # another member follows
            rest, inflate = inflate.unused_data, isal_zlib.decompressobj(_GZIP)
            yield inflate.decompress(rest)
    if not inflate.eof:
        raise EOFError("not gzip, or cut short")


def _blocks(path: Path) -> Iterator[tuple[bytes, int]]:
    """(block, offset): the file's whole lines, several at a time, and where they begin
    in the (gunzipped) file."""
    rest, offset = b"", 0
    for piece in _inflated(path):
        data = rest + piece
        end = data.rfind(b"\n") + 1
        if end:
            yield data[:end], offset
            offset += end
        rest = data[end:]
    if rest:
        yield rest, offset


def _lines_before(path: Path, offset: int) -> int:
    """How many lines the (gunzipped) file has before byte `offset`: read again."""
    lines, seen = 0, 0
    for piece in _inflated(path):
        lines += piece.count(b"\n", 0, offset - seen)
        seen += len(piece)
        if seen >= offset:
            break
    return lines


def read_blocks(
    path: Path, stats: TraceStats | None = None, *, warn: bool = True
) -> Iterator[list[TraceEvent]]:
    """The events of the trace at `path`, in order, a list per block of lines; see the
    module docstring. `warn=False` leaves the warnings about skipped events out.

    Lines are not counted while every block decodes at once: the first block that
    does not is numbered by reading the file again up to it, and from then on each
    block's lines are counted as it goes."""
    stats = stats if stats is not None else TraceStats()
    decode = _DECODER.decode_lines
    line: int | None = None  # the number of the next block's first line, once counted
    for block, offset in _blocks(path):
        try:
            events: list[TraceEvent] = decode(block)
        except msgspec.DecodeError:  # an unknown event or a bad line: find which
            if line is None:
                line = 1 + _lines_before(path, offset)
            events = _line_by_line(path, block, line, stats, warn)
        if line is not None:
            line += block.count(b"\n")
        stats.events += len(events)
        yield events


def read_trace(path: Path, stats: TraceStats | None = None) -> Iterator[TraceEvent]:
    """Each event of the trace at `path`, in order; see the module docstring."""
    for events in read_blocks(path, stats):
        yield from events


def _line_by_line(
    path: Path, block: bytes, first: int, stats: TraceStats, warn: bool
) -> list[TraceEvent]:
    events: list[TraceEvent] = []
    for number, line in enumerate(block.split(b"\n"), first):
        if not line.strip():
            continue
        try:
            events.append(_DECODER.decode(line))
        except msgspec.DecodeError as exc:
            name = _unknown_event(line)
            if name is None:
                raise UsageError(f"{path}:{number}: not a trace event: {exc}") from exc
            _skip(path, number, name, stats, warn)
    return events


def _unknown_event(line: bytes) -> str | None:
    """The `event` of a JSON object whose event is none of ours, else None."""
    try:
        obj = msgspec.json.decode(line)
    except msgspec.DecodeError:
        return None
    if not isinstance(obj, dict) or "event" not in obj:
        return None
    name = obj["event"]
    if isinstance(name, list | dict) or name in EVENT_NAMES:
        return None
    return str(name)


def _skip(path: Path, number: int, name: str, stats: TraceStats, warn: bool) -> None:
    seen = stats.skipped.get(name, 0)
    stats.skipped[name] = seen + 1
    stats.events += 1
    if warn and not seen:
        event(
            log,
            "trace_unknown_event",
            logging.WARNING,
            file=str(path),
            line=number,
            event_name=name,
        )
