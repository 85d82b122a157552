"""relay.accept.data and dot_stuff against plain reference implementations (hypothesis).

The reader finds the end of data and what to un-stuff in one search until the
first line that starts with a dot; these properties hold it, for any bytes cut
into any chunks (bare CR/LF, dots and NUL at the chunk boundaries and at the
message's ends), to what a straightforward reader decides: the terminator
found in the whole input, lines un-stuffed one by one, bare CR/LF found by a
regular expression (the line-end check also alone, on any bytes). dot_stuff
is held to a line-by-line reference, and un-stuffing what it sends gives the
text back.
"""

from __future__ import annotations

import re
from itertools import accumulate, pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from relay import replies
from relay.accept.data import TERMINATOR, DataReader, _has_bare_newline, _header_size
from relay.deliver.smtp_client import dot_stuff
from relay.replies import Reply

_BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_LINE = re.compile(rb"[^\n]*\n|[^\n]+")
PIECES = [b"\r", b"\n", b".", b"x", b"\0", b"\r\n", b"\r\n.", b"..", b"\r\n.\r\n", b"y" * 9]
wires = st.lists(st.sampled_from(PIECES), max_size=60).map(b"".join)
cuts = st.lists(st.integers(min_value=0, max_value=400), max_size=8)
limits = st.tuples(st.sampled_from([8, 40, 1000]), st.sampled_from([4, 16, 30, 1000]))


def chunked(wire: bytes, at: list[int]) -> list[bytes]:
    """`wire` cut at the offsets `at` (empty chunks included: a read may return little)."""
    bounds = [0, *sorted(min(a, len(wire)) for a in at), len(wire)]
    return [wire[a:b] for a, b in pairwise(bounds)]


def reference(chunks: list[bytes], max_size: int, max_line: int, normalize: bool) -> object:
    """(result, rest) as a plain reader decides, or None when the data never ends."""
    data = b"\r\n" + b"".join(chunks)
    end = data.find(TERMINATOR)
    ends = [2 + n for n in accumulate(len(c) for c in chunks)]
    seen = next((i for i, n in enumerate(ends) if n >= end + len(TERMINATOR)), None)
    if end < 0 or seen is None:
        return None
    cutoff = max_size + max_size // 3 + len(TERMINATOR)
    rest = data[end + len(TERMINATOR) : ends[seen]]
    if any(n > cutoff for n in ends[:seen]):
        return replies.size_exceeded(max_size), rest
    return checked(data[2 : end + 2], max_size, max_line, normalize), rest


def checked(text: bytes, max_size: int, max_line: int, normalize: bool) -> bytes | Reply:
    lines = [line[1:] if line.startswith(b".") else line for line in text.split(b"\r\n")]
    text = b"\r\n".join(lines)
    if b"\0" in text:
        return replies.BAD_LINE_ENDINGS
    if _BARE.search(text):
        if not normalize:
            return replies.BAD_LINE_ENDINGS
        text = re.sub(rb"\r\n|\r|\n", b"\r\n", text)
    if len(text) > max_size:
        return replies.size_exceeded(max_size)
    if any(len(line) > max_line for line in _LINE.findall(text)):
        return replies.LINE_TOO_LONG
    if _header_size(text, 24) > 24:
        return replies.HEADER_TOO_BIG
    return text


def read(
    chunks: list[bytes], max_size: int, max_line: int, normalize: bool, max_header: int = 24
) -> object:
    """(result, rest) as DataReader decides, or None when the data never ends."""
    reader = DataReader(max_size)
    for chunk in chunks:
        if reader.feed(chunk):
            return reader.message(max_line, normalize, max_header), reader.rest
    return None


@settings(max_examples=1500, derandomize=True, deadline=None)
@given(wires, cuts, limits, st.booleans())
def test_the_reader_decides_as_a_plain_reader(
    wire: bytes, at: list[int], limit: tuple[int, int], normalize: bool
) -> None:
    max_size, max_line = limit
    chunks = chunked(wire + b"\r\n.\r\nQUIT\r\n", at)
    assert read(chunks, max_size, max_line, normalize) == (
        reference(chunks, max_size, max_line, normalize)
    )


@settings(max_examples=500, derandomize=True, deadline=None)
@given(wires, cuts)
def test_a_wire_without_terminator_never_ends(wire: bytes, at: list[int]) -> None:
    wire = wire.replace(TERMINATOR, b"")
    if TERMINATOR not in b"\r\n" + wire:
        assert read(chunked(wire, at), 1000, 1000, True) is None


@settings(max_examples=1500, derandomize=True, deadline=None)
@given(st.one_of(wires, st.binary(max_size=200)))
def test_a_bare_line_end_is_found_as_a_regular_expression_finds_it(text: bytes) -> None:
    assert _has_bare_newline(text) == bool(_BARE.search(text))


def stuffed(data: bytes) -> bytes:
    """RFC 5321 4.5.2 line by line: CRLF at the end, a dot before each line's leading dot."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    lines = data[:-2].split(b"\r\n")
    return b"".join(b"." * line.startswith(b".") + line + b"\r\n" for line in lines) + b".\r\n"


@settings(max_examples=1000, derandomize=True, deadline=None)
@given(wires)
def test_dot_stuff_sends_what_a_line_by_line_stuffer_sends(data: bytes) -> None:
    assert b"".join(dot_stuff(data)) == stuffed(data)


crlf_texts = st.lists(st.sampled_from([b"", b".", b"..", b"x", b".x", b"y."]), max_size=30)


@settings(max_examples=500, derandomize=True, deadline=None)
@given(crlf_texts, st.booleans(), cuts)
def test_dot_stuff_then_the_reader_gives_the_text_back(
    lines: list[bytes], final: bool, at: list[int]
) -> None:
    text = b"\r\n".join(lines) + (b"\r\n" if final else b"")
    chunks = chunked(b"".join(dot_stuff(text)), at)
    expected = text if text.endswith(b"\r\n") else text + b"\r\n"
    assert read(chunks, 1 << 20, 1 << 20, False, 1 << 20) == (expected, b"")
