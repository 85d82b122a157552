"""The operators' queue filter: durations, addresses, and errors that name the field."""

from __future__ import annotations

import pytest

from ugem.core.errors import UsageError
from ugem.core.queue_filter import Criteria, MailFilter, parse_duration

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("2h", 7200), ("3d", 259200), ("1w", 604800), ("1h30m", 5400),
     ("45s", 45), ("3600", 3600), ("0.5h", 1800), (" 2H ", 7200)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "older_than") == seconds


@pytest.mark.parametrize("text", ["", "3x", "h", "-5m", "nan", "inf", "1e999", "2 h 3", "5m-"])
def test_a_bad_duration_names_the_field_and_what_is_allowed(text: str) -> None:
    with pytest.raises(UsageError, match=r"^newer_than: .* is not a duration; expected .*30m"):
        Criteria(newer_than=text).at(NOW)


def test_a_century_is_the_longest_age() -> None:
    with pytest.raises(UsageError, match=r"^older_than: .* too long"):
        parse_duration("99999d", "older_than")


def test_ages_become_times_of_receipt() -> None:
    found = Criteria(older_than="2h", newer_than="1d").at(NOW)
    assert (found.received_by, found.received_after) == (NOW - 7200, NOW - 86400)


def test_addresses_domains_and_the_null_sender() -> None:
    found = Criteria(
        sender="<A.Sadykova@MDAI.gov.kz>", recipient="@Mail.RU", domain="@Gmail.com."
    ).at(NOW)
    assert (found.sender, found.recipient, found.domain) == (
        "a.sadykova@mdai.gov.kz",
        "@mail.ru",
        "gmail.com",
    )
    assert Criteria(sender="<>").at(NOW).sender == ""
    assert Criteria(state="held", connection=" edu.gov.kz ").at(NOW) == MailFilter(
        states=("held",), connection="edu.gov.kz"
    )


@pytest.mark.parametrize(
    ("criteria", "field"),
    [
        (Criteria(state="lost"), "state"),
        (Criteria(sender="nobody"), "sender"),
        (Criteria(recipient="<>"), "recipient"),
        (Criteria(recipient="a b@x.kz"), "recipient"),
        (Criteria(domain="a@b"), "domain"),
        (Criteria(domain=" "), "domain"),
        (Criteria(older_than="soon"), "older_than"),
    ],
)
def test_each_bad_field_is_named(criteria: Criteria, field: str) -> None:
    with pytest.raises(UsageError, match=f"^{field}: "):
        criteria.at(NOW)


def test_given_fields_describe_the_filter() -> None:
    assert Criteria().given() == {} and Criteria().describe() == "all"
    criteria = Criteria(domain="mail.ru", older_than="2h")
    assert criteria.given() == {"domain": "mail.ru", "older_than": "2h"}
    assert criteria.describe() == "domain=mail.ru older_than=2h"


def test_within_narrows_to_the_states_an_action_fits() -> None:
    assert MailFilter().within(("held",)).states == ("held",)
    assert MailFilter(states=("active",)).within(("active", "deferred")).states == ("active",)
    assert MailFilter(states=("held",)).within(("deferred",)).states == ()
