"""The sink's protocol without I/O: pipelined commands, the DATA terminator, dot-unstuffing,
ids, the counts of loss and duplicates, a watch told each envelope, and a sink that refuses
every recipient (`--refuse-rcpt`)."""

from __future__ import annotations

import pytest

from loadtest.sink import Arrivals, SinkSession, message_id, unstuff
from loadtest.spec import parse_reply


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


class Seen:
    """A watch that keeps what it is told."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, list[bytes], bytes]] = []
        self.refusals: list[tuple[bytes, bytes, bytes]] = []

    def message(self, sender: bytes, rcpts: list[bytes], text: bytes) -> None:
        self.messages.append((sender, list(rcpts), text))

    def refused(self, sender: bytes, rcpt: bytes, reply: bytes) -> None:
        self.refusals.append((sender, rcpt, reply))


def test_a_watch_is_told_each_message_with_its_own_envelope() -> None:
    seen, kept = Seen(), Kept()
    session = SinkSession(kept, "sink.test", 1 << 20, watch=seen)
    session.feed(
        b"EHLO c\r\nMAIL FROM:<a@x.org> SIZE=10\r\nRCPT TO:<b@y.org>\r\n"
        b"RCPT TO:<c@y.org> NOTIFY=NEVER\r\nDATA\r\nSubject: one\r\n\r\n..hi\r\n.\r\n"
        b"MAIL FROM:<>\r\nRCPT TO:<d@z.org>\r\nDATA\r\ntwo\r\n.\r\n"
        b"MAIL FROM:<e@x.org>\r\nRSET\r\nMAIL FROM:<f@x.org>\r\nRCPT TO:<g@z.org>\r\n"
        b"DATA\r\nthree\r\n.\r\n"
    )
    assert seen.messages == [
        (b"a@x.org", [b"b@y.org", b"c@y.org"], b"Subject: one\r\n\r\n.hi\r\n"),
        (b"", [b"d@z.org"], b"two\r\n"),
        (b"f@x.org", [b"g@z.org"], b"three\r\n"),
    ]
    assert [text for text, _ in kept.messages] == [text for _, _, text in seen.messages]
    assert seen.refusals == []


def test_refuse_rcpt_answers_every_recipient_with_the_refusal_and_takes_nothing() -> None:
    seen, kept = Seen(), Kept()
    refusal = parse_reply("554 5.7.1 Client host [127.0.0.1] blocked using zen.spamhaus.org")
    session = SinkSession(kept, "sink.test", 1 << 20, rcpt_reply=refusal, watch=seen)
    replies = session.feed(
        b"EHLO c\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nRCPT TO:<c@z.org>\r\nDATA\r\n"
    )
    assert _codes(replies) == [250, 250, 554, 554, 554]
    assert replies.count(refusal) == 2 and b"No valid recipients" in replies
    assert seen.refusals == [(b"a@x.org", b"b@y.org", refusal), (b"a@x.org", b"c@z.org", refusal)]
    assert kept.messages == [] and seen.messages == []


def test_without_a_watch_no_envelope_is_kept() -> None:
    session, kept = _session()
    session.feed(b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\nx\r\n.\r\n")
    assert kept.messages == [(b"x\r\n", 1)]
    assert (session.sender, session.rcpts) == (b"", [])
