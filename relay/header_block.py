"""The header section of a message, as bytes: split from the body, cut into fields, once.

The relay holds message text with CRLF line endings only, so the header
section ends at the first empty line. `split_message(text)` returns
(header block, rest): the block holds every field with its own CRLF, the rest
starts at the empty line (or is empty when there is none), so `block + rest`
is `text` again, byte for byte. `fields(block)` cuts a block into fields, each
with its continuation lines and final CRLF; `field_name` and `field_value`
read one (the value unfolded, without the final CRLF). A line that does not
look like a field (no colon) is kept as a field of its own named "", so
joining the fields also gives the block back unchanged.

`Header.parse(text)` does both once and keeps the result, so every check of
one message (DMARC's author, DKIM's signatures, the removal of forged
Authentication-Results:) reads the same parse instead of cutting the text
again. `addresses_in(value)` reads the addresses of an address field, and
refuses (None) one too long or too nested for the stdlib's parser, which
recurses once per nested comment (RecursionError) and is slow on long input.
`dkim_fields(header)` gives the (name, value) pairs in dkimpy's
format, so dkimpy need not parse the message itself. `message_id(text)` reads
the first Message-ID: of a message (for the mail log) without cutting it.

Promise: work is linear in the size of the text (one regular-expression pass finds
where fields start, and each field is sliced once; a field folded over a million lines
costs what a million short fields cost). Nothing here raises but
`dkim_fields`, with `ValueError` for a line dkimpy would refuse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import getaddresses

CRLF = b"\r\n"
WSP = b" \t"
# A CRLF before a line that does not start with white space: a new field starts after it.
# (A literal first, so the engine skips to each CR; a look-behind at every octet is 3x slower.)
_FIELD_START = re.compile(rb"\r\n(?=[^ \t])")
_DKIM_NAME = re.compile(rb"([\x21-\x7e]+?):")  # dkimpy's reading of a field name
_MESSAGE_ID = re.compile(
    rb"^message-id[ \t]*:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", re.IGNORECASE | re.MULTILINE
)
MAX_MESSAGE_ID = 255  # characters of a Message-ID kept (the log and the index)


def split_message(text: bytes) -> tuple[bytes, bytes]:
    """(header block, rest): the rest starts with the empty line ending the headers."""
    if text.startswith(CRLF):
        return b"", text
    end = text.find(CRLF + CRLF)
    if end < 0:
        return text, b""
    return text[: end + 2], text[end + 2 :]


def fields(block: bytes) -> list[bytes]:
    """The header fields of `block`, each with its continuation lines and CRLF."""
    if not block:
        return []
    starts = [0, *(found.end() for found in _FIELD_START.finditer(block))]
    ends = [*starts[1:], len(block)]
    return [block[a:b] for a, b in zip(starts, ends, strict=True)]


def field_name(field: bytes) -> str:
    """The field's name in lower case ("" for a line without a colon)."""
    name, colon, _ = field.partition(b":")
    if not colon or not name.strip(WSP) or name[:1] in (b" ", b"\t"):
        return ""
    return name.rstrip(WSP).decode("ascii", "replace").lower()


def field_value(field: bytes) -> bytes:
    """The field's value after the colon, unfolded (CRLFs removed), without its last CRLF."""
    _, _, value = field.partition(b":")
    return value.replace(CRLF, b"")


@dataclass(frozen=True)
class Header:
    """A message cut once: its header block, its fields, and the rest (from the empty line)."""

    block: bytes
    rest: bytes
    fields: tuple[bytes, ...]
    names: tuple[str, ...]  # field_name of each field

    @classmethod
    def parse(cls, text: bytes) -> Header:
        block, rest = split_message(text)
        cut = tuple(fields(block))
        return cls(block, rest, cut, tuple(field_name(f) for f in cut))

    def named(self, name: str) -> list[bytes]:
        """Every field called `name` (lower case), top to bottom, as it is."""
        return [f for f, n in zip(self.fields, self.names, strict=True) if n == name]

    def values(self, name: str) -> list[bytes]:
        """The unfolded values of every field called `name`, top to bottom."""
        return [field_value(f) for f in self.named(name)]

    @property
    def body(self) -> bytes:
        """The body: what follows the empty line (b"" when there is none)."""
        return self.rest[2:]


def dkim_fields(header: Header) -> list[list[bytes]]:
    """[name, value] pairs as dkimpy's parser makes them (value with its CRLFs).

    Raises ValueError for a line dkimpy refuses (no name and colon); like
    dkimpy, an mbox "From " line is skipped.
    """
    out: list[list[bytes]] = []
    for field in header.fields:
        found = _DKIM_NAME.match(field)
        if found is not None:
            value = field[found.end() :]
            out.append([found.group(1), value if value.endswith(CRLF) else value + CRLF])
        elif not field.startswith(b"From "):
            raise ValueError(f"unexpected characters in header: {field[:40]!r}")
    return out


MAX_ADDRESS_FIELD = 4096  # octets of an address field (From:) read for its addresses
MAX_COMMENT_NESTING = 16  # "(" in such a field: the stdlib parser recurses per level


def addresses_in(value: bytes) -> list[str] | None:
    """The addresses in one unfolded address-field value; None when it is too big to read.

    The stdlib's parser (`email.utils.getaddresses`) is slow on long input and
    recurses once per nested comment, so a field over MAX_ADDRESS_FIELD octets
    or with more than MAX_COMMENT_NESTING "(" is not read at all: callers
    treat it as a field that does not name exactly one author.
    """
    if len(value) > MAX_ADDRESS_FIELD or value.count(b"(") > MAX_COMMENT_NESTING:
        return None
    return [addr for _, addr in getaddresses([value.decode("utf-8", "replace")]) if addr]


def message_id(text: bytes) -> str:
    """The first Message-ID: of `text`'s header section, unfolded, without its angle
    brackets, at most MAX_MESSAGE_ID characters; "" when there is none. Only the header
    section is searched, in place: the body (up to the largest message) is never copied."""
    if text.startswith(CRLF):
        return ""  # no header section
    end = text.find(CRLF + CRLF)
    found = _MESSAGE_ID.search(text, 0, len(text) if end < 0 else end + 2)
    if found is None:
        return ""
    value = found.group(1).replace(CRLF, b"").strip().strip(b"<>").strip()
    return value[: MAX_MESSAGE_ID * 4].decode("utf-8", "replace")[:MAX_MESSAGE_ID]
