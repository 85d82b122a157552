"""The text of one message after DATA: found by CRLF.CRLF only, un-dot-stuffed, checked.

`DataReader` is fed the bytes read from the client, in chunks of any size, and
says when it has seen the end of the data: the one sequence CR LF "." CR LF
(RFC 5321 section 4.1.1.4). Its buffer starts with CR LF, so an empty message
(".\\r\\n" right after DATA) ends the same way. Bytes after the terminator are
kept in `rest` for the next command (PIPELINING). Over the size limit it stops
buffering but keeps scanning for the terminator, so the client still gets a
reply. No I/O here: the session reads, this decides.

`DataReader.message(...)` then gives the text to queue, or the refusal:
- NUL anywhere: BAD_LINE_ENDINGS (550 5.6.0);
- a bare CR or bare LF: BAD_LINE_ENDINGS, unless `normalize` is set, in which
  case each one becomes CRLF. Either way every end-of-data look-alike
  (`\\n.\\n`, `\\r.\\r`, `\\n.\\r\\n`, ...) yields a refusal or one message whose
  lines all end in CRLF, so no next hop can be made to see two messages
  (SMTP smuggling, CVE-2023-51764 and kin);
- too big (as queued: un-dot-stuffed, normalised, over `max_size`):
  size_exceeded (552 5.3.4), also when buffering stopped early;
- a line over `max_line` octets, CRLF included: LINE_TOO_LONG.
"""

from __future__ import annotations

import re

from relay import replies
from relay.replies import Reply

TERMINATOR = b"\r\n.\r\n"
_ANY_NEWLINE = re.compile(rb"\r\n|\r|\n")
_KEEP = len(TERMINATOR) - 1  # bytes kept while discarding: a terminator may straddle chunks


class DataReader:
    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        # Dot-stuffing adds at most one octet to a line of at least three ("..\r\n"), so
        # the stuffed text of a message within the limit is at most 4/3 of it.
        self._cutoff = max_size + max_size // 3 + len(TERMINATOR)
        self._buf = bytearray(b"\r\n")
        self._scan = 0
        self._text: bytes | None = None
        self.too_big = False
        self.rest = b""

    @property
    def done(self) -> bool:
        return self._text is not None

    def feed(self, chunk: bytes) -> bool:
        """Add bytes from the wire; True once the terminator has been seen."""
        self._buf += chunk
        end = self._buf.find(TERMINATOR, self._scan)
        if end >= 0:
            self._text = bytes(self._buf[: end + 2])  # the leading CRLF and the text
            self.rest = bytes(self._buf[end + len(TERMINATOR) :])
            self._buf = bytearray()
            return True
        if len(self._buf) > self._cutoff:
            self.too_big = True
            del self._buf[:-_KEEP]
        self._scan = max(0, len(self._buf) - _KEEP)
        return False

    def message(self, max_line: int, normalize: bool) -> bytes | Reply:
        """The un-dot-stuffed text to queue, or the reply refusing it."""
        if self._text is None:
            raise RuntimeError("message() before the end of data was seen")
        if self.too_big:
            return replies.size_exceeded(self.max_size)
        # Every line starts after a CRLF (the buffer starts with one): drop a leading dot.
        text = self._text.replace(b"\r\n.", b"\r\n")[2:]
        self._text = b""
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
        return text


def _has_bare_newline(text: bytes) -> bool:
    without_crlf = text.replace(b"\r\n", b"")
    return b"\r" in without_crlf or b"\n" in without_crlf


def _longest_line(text: bytes, max_line: int) -> int:
    """Length of the longest line with its CRLF (exact only when it matters)."""
    if len(text) <= max_line:
        return len(text)
    return max(map(len, text.split(b"\r\n"))) + 2
