"""What a mail log line says (`ugem.core.maillog`): one entry per event about mail."""

from __future__ import annotations

import logging

import pytest

from ugem.core.events import Accepted, Complained, Outcome, QueueChange, Refused, StateChanged
from ugem.core.maillog import LOGGER, emit, entry_of

T0 = 1_767_225_600.0


def test_accepted_names_the_envelope_and_how_it_came() -> None:
    ev = Accepted(T0, "Q1", "gov.kz", "127.0.0.2", "a@gov.kz", ("x@e.org", "y@e.org"), 2048,
                  message_id="m@gov.kz", tls=True, helo="mx.gov.kz")  # fmt: skip
    entry = entry_of(ev)
    assert entry is not None
    assert (entry.event, entry.queue_id, entry.rcpts, entry.message_id) == (
        "accepted", "Q1", ("x@e.org", "y@e.org"), "m@gov.kz"
    )  # fmt: skip
    assert entry.fields == {
        "queue_id": "Q1",
        "client_ip": "127.0.0.2",
        "connection": "gov.kz",
        "sender": "a@gov.kz",
        "rcpts": 2,
        "size": 2048,
        "message_id": "m@gov.kz",
        "tls": True,
        "helo": "mx.gov.kz",
    }


def test_an_outcome_names_the_hop_the_reply_and_the_delays() -> None:
    ev = Outcome(T0, "deferred", "Q1", "gov.kz", "127.0.0.2", "x@e.org", 451, "busy",
                 reply_class="busy", status="4.2.1", hop="mx.e.org:25", sender="a@gov.kz",
                 attempt=3, delay=7.12345, connect=0.0456, transfer=0.31)  # fmt: skip
    entry = entry_of(ev)
    assert entry is not None and entry.rcpts == ("x@e.org",)
    assert entry.fields == {
        "queue_id": "Q1",
        "rcpt": "x@e.org",
        "sender": "a@gov.kz",
        "connection": "gov.kz",
        "hop": "mx.e.org:25",
        "code": 451,
        "status": "4.2.1",
        "text": "busy",
        "reply_class": "busy",
        "attempt": 3,
        "delay": 7.123,
        "connect": 0.046,
        "transfer": 0.31,
    }


def test_a_refusal_says_why_and_a_change_who() -> None:
    rcpt = Refused(T0, "203.0.113.9", "", "RCPT", 554, "5.7.1", "Relay access denied", "no relay",
                   "eve@x.org", ("v@gmail.com",), "evil", False)  # fmt: skip
    data = Refused(T0, "127.0.0.2", "gov.kz", "DATA", 552, "5.3.4", "too big", "over", "a@gov.kz",
                   ("x@e.org", "y@e.org"))  # fmt: skip
    held = QueueChange(T0, "held", "", "gov.kz", "relay", "suspended: gov.kz", 12)
    deleted = QueueChange(T0, "deleted", "Q1", "gov.kz", "api:ops", "spam")
    first, second, third, fourth = (entry_of(e) for e in (rcpt, data, held, deleted))
    assert first is not None and second is not None and third is not None and fourth is not None
    assert (first.fields["why"], first.fields["rcpt"], first.fields["command"]) == (
        "no relay", "v@gmail.com", "RCPT"
    )  # fmt: skip
    assert second.fields["rcpts"] == 2 and "rcpt" not in second.fields
    assert third.fields == {
        "connection": "gov.kz", "actor": "relay", "reason": "suspended: gov.kz", "count": 12
    }  # fmt: skip
    assert (fourth.fields["queue_id"], fourth.fields["actor"]) == ("Q1", "api:ops")


def test_events_not_about_mail_have_no_line() -> None:
    assert entry_of(StateChanged(T0, "suspended", "gov.kz", "anomaly")) is None
    assert entry_of(Complained(T0, "gov.kz", 1, "abuse", "dkim")) is None


def test_emit_writes_one_info_line_on_its_own_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    entry = entry_of(QueueChange(T0, "expired", "Q1", "gov.kz", "relay", "too old", 2))
    assert entry is not None
    emit(entry)
    [record] = caplog.records
    assert (record.name, record.levelno, record.getMessage()) == (LOGGER, logging.INFO, "expired")
    assert record.__dict__["fields"]["reason"] == "too old"
