"""A sender's per-message tags (VERP, BATV, SRS, ids) do not make it a new sender each time."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anomaly.detector import SUSPEND, Detector
from anomaly.features import Features
from anomaly.sender_key import sender_key
from ugem.core.times import unix_time

DAY = 86_400.0


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("ivan.petrov@akimat.gov.kz", "ivan.petrov@akimat.gov.kz"),  # untouched, case too
        ("Ivan.Petrov@Akimat.gov.kz", "Ivan.Petrov@Akimat.gov.kz"),
        ("ivan1985@mail.kz", "ivan1985@mail.kz"),  # a birth year is part of a name
        ("news+ivan=mail.kz@org.kz", "news@org.kz"),  # VERP
        ("news+ALIYA=Gmail.com@Org.kz", "news@org.kz"),
        ("ivan+invoices@org.kz", "ivan@org.kz"),  # a subaddress
        ("list-return-42-ivan=mail.kz@org.kz", "list-return-42@org.kz"),  # ezmlm
        ("prvs=1a2b3c4d5e=news@org.kz", "news@org.kz"),  # BATV
        ("SRS0=HhHh=TT=mail.kz=ivan@fwd.kz", "ivan@mail.kz"),  # SRS
        ("SRS1=XxXx=fwd1.kz==HhHh=TT=mail.kz=ivan@fwd2.kz", "ivan@mail.kz"),
        ("bounce-0100018c2f3b6a1e@org.kz", "bounce-#@org.kz"),  # a message id
        ("notify-20261208123456@org.kz", "notify-#@org.kz"),  # a message number
        ("=@org.kz", "@org.kz"),
        ("+@org.kz", "+@org.kz"),
        ("no-at-sign", "no-at-sign"),
        ("@org.kz", "@org.kz"),
    ],
)
def test_the_tags_are_taken_off(address: str, key: str) -> None:
    assert sender_key(address) == key


@given(st.text(max_size=80))
def test_any_text_gives_a_key_and_a_key_is_its_own_key(text: str) -> None:
    key = sender_key(text)
    assert sender_key(key) == key  # Features looks a known sender up before keying it
    if "@" not in text:
        assert key == text


@given(st.from_regex(r"[A-Za-z0-9._=+-]{0,30}@[A-Za-z0-9.-]{1,20}", fullmatch=True))
def test_an_address_keyed_twice_is_keyed_once(address: str) -> None:
    assert sender_key(sender_key(address)) == sender_key(address)


def test_a_verp_newsletter_is_one_sender_not_one_per_recipient() -> None:
    f = Features(0.0)
    f.accepted(10.0, "news@org.kz", ["a@mail.kz"])
    for i in range(50):
        f.accepted(DAY + 10.0 * i, f"news+u{i}=mail.kz@org.kz", [f"u{i}@mail.kz"])
    hour = f.window(60)
    assert (hour.msgs, hour.new_senders, hour.new_sender_strangers) == (50, 0, 0)


def test_forged_senders_writing_to_strangers_are_counted_once_each() -> None:
    f = Features(0.0)
    f.accepted(10.0, "staff@org.kz", ["colleague@org.kz"])
    for i in range(5):
        f.accepted(DAY + 10.0 * i, f"x{i}@spam{i}.example", [f"v{i}@mail.kz"])
        f.accepted(DAY + 10.0 * i + 1, f"x{i}@spam{i}.example", [f"w{i}@mail.kz"])
    hour = f.window(60)
    assert (hour.new_senders, hour.new_sender_strangers, hour.new_sender_domains) == (5, 5, 5)


def test_a_verp_newsletter_to_new_subscribers_is_not_suspended() -> None:
    """A week of office mail, then a list that tags each message's sender (VERP) mailing
    600 subscribers never mailed: counted untagged it was 600 senders never seen, each
    writing to strangers, and the connection was suspended."""
    det = Detector()
    monday = unix_time(dt.datetime(2026, 3, 2))
    people = [f"p{i}@org.gov.kz" for i in range(10)]
    for day in range(7):
        for minute in range(0, 600, 3):  # 09:00-19:00 Almaty
            ts = monday + day * DAY + 9 * 3600 + 60 * minute
            i = minute // 3
            det.accepted(ts, "org.gov.kz", people[i % 10], [f"c{i % 40}@partner.kz"])
    issue = monday + 7 * DAY + 11 * 3600
    found = [
        det.accepted(
            issue + 0.6 * i, "org.gov.kz", f"news+s{i}=mail.kz@org.gov.kz", [f"s{i}@mail.kz"]
        )
        for i in range(600)
    ]
    assert [v for v in found if v is not None and v.action == SUSPEND] == []
