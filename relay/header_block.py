"""The header section of a message, as bytes: split from the body, cut into fields.

The relay holds message text with CRLF line endings only, so the header
section ends at the first empty line. `split_message(text)` returns
(header block, rest): the block holds every field with its own CRLF, the rest
starts at the empty line (or is empty when there is none), so `block + rest`
is `text` again, byte for byte. `fields(block)` cuts a block into fields, each
with its continuation lines and final CRLF; `field_name` and `field_value`
read one (the value unfolded, without the final CRLF). A line that does not
look like a field (no colon) is kept as a field of its own named "", so
joining the fields also gives the block back unchanged. Nothing here raises.
"""

from __future__ import annotations

from collections.abc import Iterator

CRLF = b"\r\n"
WSP = b" \t"


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
    out: list[bytes] = []
    for line in _lines(block):
        if out and line[:1] in (b" ", b"\t"):
            out[-1] += line
        else:
            out.append(line)
    return out


def _lines(block: bytes) -> Iterator[bytes]:
    start = 0
    while start < len(block):
        end = block.find(CRLF, start)
        end = len(block) if end < 0 else end + 2
        yield block[start:end]
        start = end


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


def values_of(block: bytes, name: str) -> list[bytes]:
    """The unfolded values of every field called `name` (lower case), top to bottom."""
    return [field_value(f) for f in fields(block) if field_name(f) == name]
