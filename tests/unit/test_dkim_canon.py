"""relay.dkim_canon: dkimpy's relaxed body canonicalization made linear, same bytes.

dkimpy's `strip_trailing_whitespace` (`re.sub(b"[\\t ]+\\r\\n")`) restarts at
every blank of a run not followed by CRLF: 3 s per MB of such lines, held
under the GIL in the signing or verifying thread. Found while fixing issue
10's finding 1. The replacement must give the same bytes on any input and
stay linear; this module also names each private name of dkimpy the relay
touches, so a dkimpy upgrade that moves one fails here first.
"""

from __future__ import annotations

import re
import time

import dkim
import dkim.canonicalization as canon
from hypothesis import given, settings
from hypothesis import strategies as st

from relay import dkim_canon
from relay.header_block import Header
from relay.inbound.dkim_verify import parsed_message

texts = st.lists(st.sampled_from([b" ", b"\t", b"\r\n", b"\r", b"\n", b"x"]), max_size=60).map(
    b"".join
)


def dkimpy_original(content: bytes) -> bytes:
    return re.sub(b"[\t ]+\r\n", b"\r\n", content)


@settings(max_examples=500, derandomize=True, deadline=None)
@given(texts)
def test_the_linear_strip_gives_dkimpys_bytes(content: bytes) -> None:
    assert dkim_canon.strip_trailing_whitespace(content) == dkimpy_original(content)


def test_dkimpy_uses_the_linear_strip_and_keeps_the_names_we_rely_on() -> None:
    # Private names of dkimpy the relay touches or reads:
    assert canon.strip_trailing_whitespace is dkim_canon.strip_trailing_whitespace
    for name in ("compress_whitespace", "strip_trailing_lines", "correct_empty_body"):
        assert callable(getattr(canon, name)), name
    message = parsed_message(Header.parse(b"From: a@b.example\r\n\r\nhi\r\n"))
    assert message.headers == [[b"From", b" a@b.example\r\n"]]  # DKIM.headers
    assert message.body == b"hi\r\n"  # DKIM.body
    assert isinstance(message, dkim.DKIM)


def test_relaxed_body_of_blank_runs_is_linear() -> None:
    body = (b" " * 990 + b"x\r\n") * 4000  # 4 MB; dkimpy's own took about 12 s
    started = time.perf_counter()
    out = dkim_canon.relaxed_body(body)
    took = time.perf_counter() - started
    assert out == (b" x\r\n") * 4000
    assert took < 1.0, f"{took:.2f} s for 4 MB"
