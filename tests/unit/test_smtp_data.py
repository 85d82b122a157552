"""relay.accept.data: DATA ends at CRLF.CRLF only, whatever the chunking; the text is checked."""

from __future__ import annotations

import pytest

from relay import replies
from relay.accept.data import DataReader
from relay.accept.memory_budget import MemoryBudget
from relay.replies import Reply

MAX_LINE = 1000
MAX_HEADER = 64 * 1024


def read(
    wire: bytes,
    chunk: int = 0,
    max_size: int = 10_000,
    normalize: bool = False,
    budget: MemoryBudget | None = None,
) -> tuple[bytes | Reply, bytes]:
    """Feed `wire` in chunks of `chunk` octets (0: at once); (message, the bytes after it)."""
    reader = DataReader(max_size, budget or MemoryBudget(1 << 30))
    size = chunk or len(wire)
    for start in range(0, len(wire), size):
        if reader.feed(wire[start : start + size]):
            return reader.message(MAX_LINE, normalize, MAX_HEADER), reader.rest + wire[
                start + size :
            ]
    raise AssertionError("no end of data found")


@pytest.mark.parametrize("chunk", [0, 1, 2, 3, 4, 5, 7])
def test_terminator_found_across_any_chunking(chunk: int) -> None:
    text, rest = read(b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n", chunk)
    assert text == b"Subject: x\r\n\r\nbody\r\n"
    assert rest == b"QUIT\r\n"


def test_empty_message_and_leading_empty_line() -> None:
    assert read(b".\r\n")[0] == b""
    assert read(b"\r\n.\r\n")[0] == b"\r\n"


def test_dot_stuffing_is_undone_at_every_line_start() -> None:
    text, _ = read(b"..first\r\nmid.dle\r\n...\r\n..\r\n.x\r\n.\r\n")
    assert text == b".first\r\nmid.dle\r\n..\r\n.\r\nx\r\n"


def test_not_done_before_the_terminator() -> None:
    reader = DataReader(1000)
    assert not reader.feed(b"a\n.\nb\r.\rc\r\n.")
    assert not reader.done
    assert reader.feed(b"\r\n")


LOOKALIKES = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r", b"\n.\r"]


@pytest.mark.parametrize("lookalike", LOOKALIKES)
def test_lookalike_is_refused_without_normalising(lookalike: bytes) -> None:
    text, rest = read(b"one" + lookalike + b"two\r\n.\r\n")
    assert text == replies.BAD_LINE_ENDINGS
    assert rest == b""


@pytest.mark.parametrize("lookalike", LOOKALIKES)
def test_lookalike_normalised_is_one_message_with_crlf_only(lookalike: bytes) -> None:
    text, _ = read(b"one" + lookalike + b"two\r\n.\r\n", normalize=True)
    assert isinstance(text, bytes)
    assert text.startswith(b"one\r\n") and text.endswith(b"two\r\n")
    assert text.count(b"\r") == text.count(b"\n") == text.count(b"\r\n")


@pytest.mark.parametrize("normalize", [False, True])
def test_nul_is_refused_even_when_normalising(normalize: bool) -> None:
    assert read(b"one\r\n\x00.\r\ntwo\r\n.\r\n", normalize=normalize)[0] == (
        replies.BAD_LINE_ENDINGS
    )


def test_size_limit_counts_the_unstuffed_text() -> None:
    exactly = b"." * 98 + b"\r\n"  # 100 octets queued, 101 on the wire
    assert read(b"." + exactly + b".\r\n", max_size=100)[0] == exactly
    assert read(b"x" + exactly + b".\r\n", max_size=100)[0] == replies.size_exceeded(100)


def test_over_the_limit_stops_buffering_but_finds_the_end() -> None:
    reader = DataReader(1024)
    for _ in range(100):
        assert not reader.feed(b"x" * 998 + b"\r\n")
    assert len(reader._buf) < 2 * 1024  # buffering stopped
    assert reader.feed(b"tail\r\n.\r\nNOOP\r\n")
    assert reader.message(MAX_LINE, False, MAX_HEADER) == replies.size_exceeded(1024)
    assert reader.rest == b"NOOP\r\n"


def test_line_length_limit_counts_crlf() -> None:
    fits = b"x" * (MAX_LINE - 2) + b"\r\n"
    assert read(fits + b".\r\n")[0] == fits
    assert read(b"x" + fits + b".\r\n")[0] == replies.LINE_TOO_LONG


def test_message_before_the_end_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError):
        DataReader(100).message(MAX_LINE, False, MAX_HEADER)


def test_a_header_section_over_the_limit_is_refused() -> None:
    fits = b"Subject: x\r\n" + b" y\r\n" * ((MAX_HEADER - 12) // 4)
    assert read(fits + b"\r\nbody\r\n.\r\n", max_size=1 << 20)[0] == fits + b"\r\nbody\r\n"
    folded = fits + b" yy\r\n"
    got = read(folded + b"\r\nbody\r\n.\r\n", max_size=1 << 20)[0]
    assert got == replies.HEADER_TOO_BIG
    assert read(folded + b".\r\n", max_size=1 << 20)[0] == replies.HEADER_TOO_BIG  # no body
    headless = b"no header here\r\n" * 10_000  # text without headers is all body
    assert read(headless + b".\r\n", max_size=1 << 20)[0] == headless


def test_a_message_that_finds_the_budget_spent_is_read_to_its_end_and_refused() -> None:
    budget = MemoryBudget(3000)
    first = DataReader(10_000, budget)
    assert not first.feed(b"x" * 998 + b"\r\n" * 1)
    assert budget.in_use == 1000 and first.held == 1000
    second = DataReader(10_000, budget)
    for _ in range(5):
        assert not second.feed(b"y" * 998 + b"\r\n")
    assert second.starved and second.held == 0 and budget.in_use == 1000
    assert len(second._buf) < 10  # nothing buffered past the refusal
    assert second.feed(b"end\r\n.\r\nQUIT\r\n")
    assert second.message(MAX_LINE, False, MAX_HEADER) == replies.NO_MEMORY
    assert second.rest == b"QUIT\r\n"
    assert (
        first.feed(b".\r\n") and first.message(MAX_LINE, False, MAX_HEADER) == b"x" * 998 + b"\r\n"
    )
    first.release()
    first.release()  # once only
    assert budget.in_use == 0


def test_long_text_is_measured_a_window_at_a_time() -> None:
    lines = b"z" * 900 + b"\r\n"
    body = lines * 3000  # 2.7 MB: several windows
    assert read(body + b".\r\n", max_size=4 << 20)[0] == body
    late = body + b"w" * 1200 + b"\r\n"
    assert read(late + b".\r\n", max_size=4 << 20)[0] == replies.LINE_TOO_LONG
