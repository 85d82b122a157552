"""What a person watching a sink sees (`sink --show`): one line per message, one per refusal.

`Show(out)` is a sink session's watcher: `message(sender, rcpts, text)` prints
`arrived from=<a@x.org> to=<b@y.org>,<c@y.org> subject="Hello"` and
`refused(sender, rcpt, reply)` prints `refused from=<a@x.org> to=<b@y.org>: 554 5.7.1 ...`,
each flushed at once, so a terminal or a file shows it as it happens. The
subject is the first Subject field of the header section, unfolded, its RFC
2047 words decoded, cut at `SUBJECT_MAX` characters ("" when there is none);
an address is shown as the client sent it, bytes that are not UTF-8 replaced.
Nothing a client sends makes it raise; its cost is linear in the header section.
"""

from __future__ import annotations

import email.header
import json
from typing import Protocol, TextIO

SUBJECT_MAX = 200
_SUBJECT = b"\r\nsubject:"


class Watcher(Protocol):
    def message(self, sender: bytes, rcpts: list[bytes], text: bytes) -> None: ...

    def refused(self, sender: bytes, rcpt: bytes, reply: bytes) -> None: ...


def path_of(line: bytes) -> bytes:
    """The address between < and > of a MAIL or RCPT command line, or what follows its colon."""
    start, end = line.find(b"<"), line.find(b">")
    if 0 <= start < end:
        return line[start + 1 : end]
    return line.partition(b":")[2].strip().split(b" ", 1)[0]


def subject(text: bytes) -> str:
    """The message's subject as a person reads it; see the module docstring."""
    end = text.find(b"\r\n\r\n")
    head = b"\r\n" + (text if end < 0 else text[: end + 2])
    start = head.lower().find(_SUBJECT)  # lower() keeps offsets: ASCII only
    if start < 0:
        return ""
    start += len(_SUBJECT)
    stop = start
    while True:  # the field ends at a line that does not begin with white space
        stop = head.find(b"\r\n", stop)
        if stop < 0 or head[stop + 2 : stop + 3] not in (b" ", b"\t"):
            break
        stop += 2
    raw = head[start : stop if stop >= 0 else len(head)].decode("utf-8", "replace")
    return _decoded(" ".join(raw.split()))[:SUBJECT_MAX]


def _decoded(value: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError):  # a malformed or unknown encoded word: shown as sent
        return value


def _addr(value: bytes) -> str:
    return "<" + value.decode("utf-8", "replace") + ">"


class Show:
    """Prints what arrives and what is refused to `out`; see the module docstring."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def message(self, sender: bytes, rcpts: list[bytes], text: bytes) -> None:
        to = ",".join(_addr(r) for r in rcpts)
        title = json.dumps(subject(text), ensure_ascii=False)
        print(f"arrived from={_addr(sender)} to={to} subject={title}", file=self.out, flush=True)

    def refused(self, sender: bytes, rcpt: bytes, reply: bytes) -> None:
        said = reply.decode("ascii", "replace").strip()
        print(f"refused from={_addr(sender)} to={_addr(rcpt)}: {said}", file=self.out, flush=True)
