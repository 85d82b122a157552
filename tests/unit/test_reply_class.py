"""ugem.core.reply_class: remote replies are counted by what their text says, not the code alone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ugem.core.events import Outcome, event_of_record, trace_record
from ugem.core.reply_class import MAX_TEXT, POLICY, RATE_LIMITED, UNKNOWN_USER, counted_code


@pytest.mark.parametrize(
    ("code", "text", "counted"),
    [
        # refusals as spam or by policy, whatever the code
        (550, "5.7.1 [1.2.3.4] Our system has detected that this message is likely spam", POLICY),
        (
            550,
            "5.7.708 Service unavailable. Access denied, traffic not accepted from this IP",
            POLICY,
        ),
        (554, "5.7.1 Service unavailable; Client host blocked using zen.spamhaus.org", POLICY),
        (553, "Message rejected for policy reasons", POLICY),
        (550, "Your IP is listed on a blocklist (RBL)", POLICY),
        # unknown users, whatever the code
        (550, "5.1.1 The email account that you tried to reach does not exist", UNKNOWN_USER),
        (553, "sorry, no such user here", UNKNOWN_USER),
        (551, "5.1.10 Recipient not found", UNKNOWN_USER),
        (550, "Requested action not taken: mailbox unavailable", UNKNOWN_USER),
        # rate limiting
        (451, "4.7.1 Too many messages from your IP, try again later", RATE_LIMITED),
        (421, "4.7.28 Our system has detected an unusual rate of unsolicited mail", RATE_LIMITED),
        # what says nothing more stays what its code says
        (552, "5.2.2 Mailbox full", 552),
        (451, "4.3.0 Temporary local problem", 451),
        (450, "4.2.0 Greylisted, please retry", 450),
        (250, "2.0.0 OK queued as 12345", 250),
        (554, "", 554),
        (550, "", 550),
    ],
)
def test_a_reply_is_counted_by_what_it_says(code: int, text: str, counted: int) -> None:
    assert counted_code(code, text) == counted


def test_only_the_first_characters_are_read() -> None:
    assert counted_code(550, "x" * MAX_TEXT + " spam") == 550
    assert counted_code(550, "spam " + "x" * 10**6) == POLICY


@given(st.integers(min_value=200, max_value=599), st.text(max_size=2000))
def test_any_reply_gets_a_code_of_its_kind(code: int, text: str) -> None:
    counted = counted_code(code, text)
    assert counted == code or counted // 100 == code // 100  # never a 4xx made a 5xx


def test_the_counted_code_travels_in_the_traffic_record_only_when_it_differs() -> None:
    told = Outcome(1.0, "bounced", "q", "x.gov.kz", "127.0.0.2", "a@b.kz", 550, "5.7.1 spam", 554)
    record = trace_record(told)
    assert record is not None and record["code"] == 550 and record["counted"] == 554
    assert event_of_record(record) == Outcome(
        1.0, "bounced", "", "x.gov.kz", "127.0.0.2", "a@b.kz", 550, counted=554
    )
    plain = Outcome(1.0, "bounced", "q", "x.gov.kz", "127.0.0.2", "a@b.kz", 550, "5.1.1", 550)
    record = trace_record(plain)
    assert record is not None and "counted" not in record
