"""The text of one message after DATA: found by CRLF.CRLF only, un-dot-stuffed, checked.

`DataReader` is fed the bytes read from the client, in chunks of any size, and
says when it has seen the end of the data: the one sequence CR LF "." CR LF
(RFC 5321 section 4.1.1.4). Its buffer starts with CR LF, so an empty message
(".\\r\\n" right after DATA) ends the same way. Bytes after the terminator are
kept in `rest` for the next command (PIPELINING). Over the size limit, or
when the listener's `MemoryBudget` refuses the next chunk, it stops buffering
(and gives its share back) but keeps scanning for the terminator, so the
client still gets a reply. What it buffers it takes from the budget; the
session gives it back with `release()` once the message is queued or
refused. Copies: the buffer, then one copy of the text, then the
un-stuffed text only when a line starts with a dot, then a transient Latin-1
copy for the line-end check (never more than two copies alive at once); lines
are measured a window at a time. Passes over the bytes (a search is 0.4-1 ms
at 1 MB): until the first line that starts with a dot, one search for CR LF
"." finds both the terminator (the first such match followed by CR LF) and
whether there is anything to un-stuff; after that line, only the terminator
is sought, and the text is un-stuffed. No I/O here: the session reads, this decides.

`DataReader.message(...)` then gives the text to queue, or the refusal:
- NUL anywhere: BAD_LINE_ENDINGS (550 5.6.0);
- a bare CR or bare LF: BAD_LINE_ENDINGS, unless `normalize` is set, in which
  case each one becomes CRLF. Either way every end-of-data look-alike
  (`\\n.\\n`, `\\r.\\r`, `\\n.\\r\\n`, ...) yields a refusal or one message whose
  lines all end in CRLF, so no next hop can be made to see two messages
  (SMTP smuggling, CVE-2023-51764 and kin);
- too big (as queued: un-dot-stuffed, normalised, over `max_size`):
  size_exceeded (552 5.3.4), also when buffering stopped early;
- the memory budget ran out while it was read: NO_MEMORY (452 4.3.1, try
  again later);
- a line over `max_line` octets, CRLF included: LINE_TOO_LONG;
- a header section (up to the first empty line, or to the first line that
  is no header field) over `max_header` octets: HEADER_TOO_BIG (552 5.3.4).
"""

from __future__ import annotations

import io
import re

from relay import replies
from relay.accept.memory_budget import UNLIMITED, MemoryBudget
from relay.header_block import field_name, fields
from relay.replies import Reply

TERMINATOR = b"\r\n.\r\n"
# Searched with re, whose literal search is 0.28 ms a MB where bytes.find takes 0.45-0.7
# (its skip table does little in text with a CRLF every 78 octets).
_DOT_LINE = re.compile(rb"\r\n\.")  # a line that starts with a dot; the terminator is one too
_END = re.compile(re.escape(TERMINATOR))
_ANY_NEWLINE = re.compile(rb"\r\n|\r|\n")
_KEEP = len(TERMINATOR) - 1  # bytes kept while discarding: a terminator may straddle chunks


class DataReader:
    def __init__(self, max_size: int, budget: MemoryBudget = UNLIMITED) -> None:
        self.max_size = max_size
        self.budget = budget
        # Dot-stuffing adds at most one octet to a line of at least three ("..\r\n"), so
        # the stuffed text of a message within the limit is at most 4/3 of it.
        self._cutoff = max_size + max_size // 3 + len(TERMINATOR)
        self._buf = bytearray(b"\r\n")
        self._scan = 0
        self._dotted = False  # a line before the terminator starts with a dot
        self._text: bytes | None = None
        self.too_big = False
        self.starved = False  # the memory budget refused more: read to the end, refuse
        self.held = 0  # bytes taken from the budget (given back by `release`)
        self.rest = b""

    @property
    def done(self) -> bool:
        return self._text is not None

    def feed(self, chunk: bytes) -> bool:
        """Add bytes from the wire; True once the terminator has been seen."""
        if not self._discarding():
            if self.budget.take(len(chunk)):
                self.held += len(chunk)
            else:
                self.starved = True
                self.release()  # what it held is discarded below: others may use it
        self._buf += chunk
        end = self._find_end()
        if end >= 0:
            with memoryview(self._buf) as view:  # one copy of the text, not two
                self._text = bytes(view[2 : end + 2])  # without the leading CRLF
                self.rest = bytes(view[end + len(TERMINATOR) :])
            self._buf = bytearray()
            return True
        if len(self._buf) > self._cutoff:
            self.too_big = True
        if self._discarding():
            del self._buf[:-_KEEP]
        self._scan = max(0, len(self._buf) - _KEEP)
        return False

    def _find_end(self) -> int:
        """Where the terminator starts in the buffer, or -1 (not seen yet).

        A terminator is a dot line, so until one has been seen that is not the
        terminator, the first dot line is the answer when CRLF follows its dot; a
        match too near the end to tell is looked at again with the next chunk.
        """
        buf = self._buf
        if not self._dotted:
            dot = _DOT_LINE.search(buf, self._scan)
            if dot is None or dot.start() + len(TERMINATOR) > len(buf):
                return -1
            if buf.startswith(b"\r\n", dot.end()):
                return dot.start()
            self._dotted = True
            self._scan = dot.start()
        end = _END.search(buf, self._scan)
        return -1 if end is None else end.start()

    def _discarding(self) -> bool:
        return self.too_big or self.starved

    def release(self) -> None:
        """Give back to the budget what this message took (once; later calls do nothing)."""
        self.budget.give(self.held)
        self.held = 0

    def message(self, max_line: int, normalize: bool, max_header: int) -> bytes | Reply:
        """The un-dot-stuffed text to queue, or the reply refusing it."""
        if self._text is None:
            raise RuntimeError("message() before the end of data was seen")
        if self.too_big:
            return replies.size_exceeded(self.max_size)
        if self.starved:
            return replies.NO_MEMORY
        text, self._text = self._text, b""
        if self._dotted:  # else no line starts with a dot: nothing to un-stuff
            text = _unstuffed(text)
        if b"\0" in text:
            return replies.BAD_LINE_ENDINGS
        if _has_bare_newline(text):
            if not normalize:
                return replies.BAD_LINE_ENDINGS
            text = _ANY_NEWLINE.sub(b"\r\n", text)
        if len(text) > self.max_size:
            return replies.size_exceeded(self.max_size)
        if _longest_line(text, max_line) > max_line:
            return replies.LINE_TOO_LONG
        if _header_size(text, max_header) > max_header:
            return replies.HEADER_TOO_BIG
        return text


def _unstuffed(text: bytes) -> bytes:
    """Every line but the first starts after a CRLF: drop a leading dot."""
    text = text.replace(b"\r\n.", b"\r\n")
    return text[1:] if text.startswith(b".") else text


def _header_size(text: bytes, max_header: int) -> int:
    """Octets of the header section (exact only up to max_header).

    It ends at the first empty line, or before the first line that is no
    header field (text sent without headers is all body, as mail parsers read it).
    """
    if text.startswith(b"\r\n"):
        return 0
    end = text.find(b"\r\n\r\n", 0, max_header + 4)
    if end >= 0 or len(text) <= max_header:
        return end + 2 if end >= 0 else len(text)
    cut = fields(text[: max_header + 1])
    return 0 if any(not field_name(f) for f in cut[:-1]) else len(text)


def _has_bare_newline(text: bytes) -> bool:
    """A CR or LF that is not part of a CRLF: one pass in C, over a copy.

    io's newline decoder notes each kind of line end it meets (CRLF, a lone CR,
    a lone LF) in one scan; a CRLF-only text shows CRLF or nothing. It reads
    text, so it gets a Latin-1 copy (one octet a character, every byte value
    kept, no other line end: a memcpy). At 1 MB this is 0.33 ms where
    counting CRLF, CR and LF (three passes; a CR-LF pair needs a two-byte
    search, slow in text with a CRLF every 78 octets) took 1.4 ms.
    """
    kinds = io.IncrementalNewlineDecoder(None, translate=False)
    kinds.decode(text.decode("latin-1"), final=True)
    return kinds.newlines not in (None, "\r\n")


def _longest_line(text: bytes, max_line: int) -> int:
    """The length (CRLF included) of a line over `max_line`, or 0 when there is none.

    Lines are not split out (420,000 short lines took 60 ms on the event loop):
    the text is probed every max_line/2 octets for a newline, and only a probe
    window without one (part of a line at least that long) is measured, so
    the work is a few C calls per max_line/2 octets and each call is short.
    A line over max_line holds a whole probe window, so none is missed.
    """
    if len(text) <= max_line:
        return 0
    half = max(1, max_line // 2)
    for start in range(0, len(text) - half + 1, half):
        if text.find(b"\n", start, start + half) >= 0:
            continue
        first = text.rfind(b"\n", 0, start) + 1
        end = text.find(b"\n", start)
        length = (len(text) if end < 0 else end + 1) - first
        if length > max_line:
            return length
    return 0
