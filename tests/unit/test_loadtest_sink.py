"""The sink's protocol without I/O: pipelined commands, the DATA terminator, dot-unstuffing,
ids, and the counts of loss and duplicates."""

from __future__ import annotations

import pytest

from loadtest.sink import Arrivals, SinkSession, message_id, unstuff


class Kept:
    def __init__(self) -> None:
        self.messages: list[tuple[bytes, int]] = []

    def __call__(self, text: bytes, recipients: int) -> None:
        self.messages.append((text, recipients))


def _session(max_size: int = 1 << 20) -> tuple[SinkSession, Kept]:
    kept = Kept()
    return SinkSession(kept, "sink.test", max_size), kept


def _codes(replies: bytes) -> list[int]:
    return [int(line[:3]) for line in replies.split(b"\r\n") if line[3:4] == b" "]


def test_pipelined_commands_are_answered_at_once_in_order() -> None:
    session, kept = _session()
    assert session.greeting().startswith(b"220 sink.test ")
    ehlo = session.feed(b"EHLO client\r\n")
    assert b"250-PIPELINING\r\n" in ehlo and _codes(ehlo) == [250]
    replies = session.feed(
        b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nRCPT TO:<c@y.org>\r\nDATA\r\n"
    )
    assert _codes(replies) == [250, 250, 250, 354]
    assert _codes(session.feed(b"Subject: hi\r\n\r\nbody\r\n.\r\n")) == [250]
    assert kept.messages == [(b"Subject: hi\r\n\r\nbody\r\n", 2)]


def test_the_text_and_the_next_transaction_in_one_read() -> None:
    session, kept = _session()
    session.feed(b"EHLO c\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n")
    replies = session.feed(
        b"one\r\n.\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\ntwo\r\n.\r\nQUIT\r\n"
    )
    assert _codes(replies) == [250, 250, 250, 354, 250, 221]
    assert [text for text, _ in kept.messages] == [b"one\r\n", b"two\r\n"]
    assert session.closing


@pytest.mark.parametrize("cut", range(1, 12))
def test_terminator_split_across_reads(cut: int) -> None:
    session, kept = _session()
    session.feed(b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n")
    stream = b"line\r\n..dot\r\n.\r\nNOOP\r\n"
    first = session.feed(stream[:cut])
    second = session.feed(stream[cut:])
    assert _codes(first + second) == [250, 250]
    assert kept.messages == [(b"line\r\n.dot\r\n", 1)]


def test_dot_unstuffing_keeps_everything_else() -> None:
    assert unstuff(b"..leading\r\nmid..dle\r\n...three\r\n..\r\n") == (
        b".leading\r\nmid..dle\r\n..three\r\n.\r\n"
    )
    assert unstuff(b"plain\r\n") == b"plain\r\n"


def test_empty_text_right_after_data() -> None:
    session, kept = _session()
    session.feed(b"MAIL FROM:<>\r\nRCPT TO:<b@y.org>\r\n")
    assert _codes(session.feed(b"DATA\r\n.\r\n")) == [354, 250]
    assert kept.messages == [(b"", 1)]


def test_bare_lf_dot_does_not_end_the_text() -> None:
    session, kept = _session()
    session.feed(b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n")
    assert session.feed(b"a\n.\nb\r\n") == b""
    assert _codes(session.feed(b".\r\n")) == [250]
    assert kept.messages == [(b"a\n.\nb\r\n", 1)]


def test_data_without_recipient_and_unknown_commands_are_refused() -> None:
    session, kept = _session()
    assert _codes(session.feed(b"MAIL FROM:<a@x.org>\r\nDATA\r\nXYZZY\r\n")) == [250, 554, 500]
    assert kept.messages == []


def test_a_text_over_the_limit_is_read_to_its_end_and_refused() -> None:
    session, kept = _session(max_size=100)
    session.feed(b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n")
    for _ in range(10):
        assert session.feed(b"x" * 60 + b"\r\n") == b""
    assert _codes(session.feed(b".\r\nNOOP\r\n")) == [552, 250]
    assert kept.messages == []


def test_an_endless_command_line_is_refused_not_buffered() -> None:
    session, _ = _session()
    assert _codes(session.feed(b"A" * 5000)) == [500]
    assert len(session.buffer) == 0


def test_message_id_reads_the_header_section_only() -> None:
    text = b"Received: x\r\nX-LoadTest-Id:  r1-5 \r\nSubject: s\r\n\r\nX-Loadtest-Id: r1-9\r\n"
    assert message_id(text) == "r1-5"
    assert message_id(b"Subject: s\r\n\r\nX-Loadtest-Id: r1-9\r\n") is None
    assert message_id(b"X-Loadtest-Id: r1-3\r\n") == "r1-3"  # the first line, no body


def test_arrivals_count_duplicates_loss_and_rate() -> None:
    times = iter([10.0, 10.5, 11.0, 12.0])
    arrivals = Arrivals(clock=lambda: next(times))
    for n in (1, 2, 2):
        arrivals.record(b"X-Loadtest-Id: r-%d\r\n\r\nbody\r\n" % n, 1)
    arrivals.record(b"Subject: no id\r\n\r\n", 2)
    arrivals.expect(["r-1", "r-2", "r-3"])
    stats = arrivals.stats()
    assert stats["messages"] == 4
    assert stats["recipients"] == 5
    assert stats["unique_ids"] == 2
    assert stats["duplicates"] == 1
    assert stats["without_id"] == 1
    assert (stats["expected"], stats["lost"], stats["unexpected"]) == (3, 1, 0)
    assert (stats["first_arrival"], stats["last_arrival"]) == (10.0, 12.0)
    assert stats["arrival_rate"] == pytest.approx(1.5)  # 3 intervals over 2 s
