"""The memory of recipients: what counts as new, how long it is remembered, what is expected."""

from __future__ import annotations

import pytest

import anomaly.recipients
from anomaly.recipients import (
    FREEZE_S,
    MATURE_S,
    SPARSE_FLOOR,
    Recipients,
)
from anomaly.warmup import LEAST_S as WARMUP_S

T = 1_795_000_000.0  # a fixed start: nothing here reads the wall clock
PERSON = "a@x.gov.kz"
CONTACTS = [f"c{i}@y{i % 3}.kz" for i in range(20)]


def mails_contacts(r: Recipients, start: float, days: float, sender: str = PERSON) -> float:
    """`sender` mails its 20 contacts in turn, one every 5 minutes; the time after it."""
    ts, i = start, 0
    while ts < start + days * 86_400:
        r.note(ts, sender, [CONTACTS[i % len(CONTACTS)]])
        ts, i = ts + 300, i + 1
    return ts


def next_period(ts: float) -> float:
    return (ts // FREEZE_S + 1) * FREEZE_S


def test_nothing_is_new_while_warming_up_then_only_unseen_addresses() -> None:
    r = Recipients(T)
    for i, ts in enumerate(range(int(T), int(T + WARMUP_S), 600)):
        assert r.note(float(ts), PERSON, [CONTACTS[i % 10], f"n{i}@z.kz"]) == (0, 0.0, 0)
        assert not r.warm
    assert r.note(T + WARMUP_S - 1, "new@x.gov.kz", ["fresh@z.kz"]) == (0, 0.0, 0)
    new, expected, _ = r.note(T + WARMUP_S, PERSON, [CONTACTS[0], "unseen@z.kz", CONTACTS[9]])
    assert r.warm and new == 1 and expected > 0.0  # the one address never seen
    assert r.note(T + WARMUP_S + 1, PERSON, ["n3@z.kz", "fresh@z.kz"])[0] == 0  # seen warming up
    assert r.note(T + WARMUP_S + 2, PERSON, ["x@z.kz", "x@z.kz", "y@z.kz"])[0] == 2  # once each


def test_an_address_seen_again_is_not_new() -> None:
    r = Recipients(T)
    ts = T + WARMUP_S
    assert [r.note(ts + i, PERSON, ["once@z.kz"])[0] for i in range(5)] == [1, 0, 0, 0, 0]
    assert r.note(ts + 9, "other@x.gov.kz", ["once@z.kz"])[0] == 0  # whoever mails it again


def test_two_generations_bound_the_memory_and_carry_what_is_mailed_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    g = 8
    monkeypatch.setattr(anomaly.recipients, "GENERATION", g)
    r = Recipients(T)
    ts = T + WARMUP_S

    def new(rcpt: str) -> int:
        return r.note(ts, PERSON, [rcpt])[0]

    assert [new(f"a{i}@z.kz") for i in range(g)] == [1] * g  # the first generation, full
    assert new("a0@z.kz") == 0  # in the previous generation: known, carried into the current
    assert [new(f"b{i}@z.kz") for i in range(g - 1)] == [1] * (g - 1)  # the second one, full
    assert new("a0@z.kz") == 0  # carried again: mailed within the last two generations
    assert new("a1@z.kz") == 1  # not mailed for two generations: forgotten, new again
    sizes = []
    for i in range(3 * g):
        assert new(f"d{i}@z.kz") == 1
        sizes.append(len(r._current) + len(r._previous))
    assert max(sizes) <= 2 * g and max(sizes) >= g


def test_the_expected_share_is_frozen_for_the_period() -> None:
    """A person who mails only its contacts turns spammer at the start of an hour: within
    the hour it is measured against what it did before, not against its own spam; and
    what it does out of character is not learned as its usual for the hours after."""
    r = Recipients(T)
    ts = mails_contacts(r, T, 3)
    spam = next_period(ts) + 10
    found = [r.note(spam + 20 * i, PERSON, [f"s{i}@q.kz"]) for i in range(150)]  # 50 minutes
    assert {new for new, _, _ in found} == {1}
    before = found[0][1]
    assert before < 0.05  # what it did before: almost never a new recipient
    assert all(expected == before for _, expected, _ in found)
    later = next_period(spam) + FREEZE_S  # two periods on: the spam was not learned
    assert r.note(later, PERSON, ["s-late@q.kz"])[1] < 2 * before + 0.01


def test_a_sender_that_comes_to_mail_new_people_a_little_more_is_learned() -> None:
    """Within character (fewer than OUT_OF_CHARACTER beyond its expected in an hour), a
    change of habit is learned: a clerk who takes on citizens' letters."""
    r = Recipients(T)
    ts = mails_contacts(r, T, 3)
    before = r.note(ts, PERSON, [CONTACTS[0]])[1]
    for hour in range(12):  # two new people an hour, twelve hours
        start = next_period(ts) + hour * FREEZE_S
        for i in range(6):
            rcpt = f"h{hour}.{i}@q.kz" if i < 2 else CONTACTS[i]
            r.note(start + 60 * i, PERSON, [rcpt])
    assert r.note(next_period(ts) + 13 * FREEZE_S, PERSON, [CONTACTS[1]])[1] > 3 * before


def test_a_sender_turned_spammer_just_before_the_hour_is_measured_against_its_past() -> None:
    r = Recipients(T)
    ts = mails_contacts(r, T, 3)
    start = next_period(ts) - 30  # one message a second for two minutes
    expected = [r.note(start + i, PERSON, [f"s{i}@q.kz"])[1] for i in range(120)]
    assert expected[0] < 0.05
    assert max(expected) < 0.05  # the hour turned: still what it did before the spam


def test_a_sparse_sender_is_measured_against_what_such_senders_do_here() -> None:
    r = Recipients(T)
    ts = T + WARMUP_S
    for i in range(400):  # many people, a few messages each, mostly to known contacts
        r.note(ts + 60 * i, f"p{i % 100}@x.gov.kz", [CONTACTS[i % 20]])
    ts = next_period(next_period(ts + 60 * 400)) + 1
    ten = [f"t{i}@q.kz" for i in range(10)]
    new, expected, _ = r.note(ts, "first@x.gov.kz", ten)  # a sender never seen: the prior
    assert new == 10 and expected == pytest.approx(SPARSE_FLOOR * 10)  # they mail contacts
    # A connection whose occasional senders reach citizens never mailed (case robots): the
    # prior is what they do.
    robots = Recipients(T)
    ts = T + WARMUP_S
    for i in range(3 * 288):
        robots.note(ts, f"case{i % 300}@x.gov.kz", [f"citizen{i}@mail.kz"])
        ts += 300
    new, expected, _ = robots.note(next_period(ts) + 1, "first@x.gov.kz", ten)
    assert new == 10 and expected > 9
    assert not robots.established  # a sender never seen has no history of its own


def test_maturity_grows_from_nothing_to_complete_over_a_week() -> None:
    r = Recipients(T)
    assert r.maturity(T) == 0.0 and r.maturity(T - 3600) == 0.0
    assert r.maturity(T + MATURE_S / 2) == pytest.approx(0.5)
    steps = [r.maturity(T + d * 86_400) for d in range(10)]
    assert steps == sorted(steps) and steps[1] == pytest.approx(86_400 / MATURE_S)
    assert r.maturity(T + MATURE_S) == 1.0 and r.maturity(T + 10 * MATURE_S) == 1.0


def test_new_foreign_domains_are_counted_once_and_kazakh_ones_never() -> None:
    """Only a new address's domain is looked at; a foreign domain counts the first time, a
    .kz or .қаз one (a company never mailed) never, a domain mailed while warming up never."""
    r = Recipients(T)
    ts = mails_contacts(r, T, 3)
    r.note(T + 1, PERSON, ["early@known.com"])  # while warming up
    found = [
        r.note(ts + 1, PERSON, ["a@new.com", "b@new.com", "c@Other.DE"])[2],
        r.note(ts + 2, PERSON, ["d@new.com"])[2],
        r.note(ts + 3, PERSON, ["e@company.kz", "f@mail.company.kz", "g@x.xn--80ao21a"])[2],
        r.note(ts + 4, PERSON, ["h@known.com", "i@other.de"])[2],
    ]
    assert found == [2, 0, 0, 0]


def test_new_people_at_organisations_already_mailed_are_partners_and_citizens_are_not() -> None:
    """`partners`: of a message's new recipients, those at a domain mailed before that is no
    free-mail provider's (anomaly.free_mail), in the current or the previous generation."""
    r = Recipients(T)
    ts = mails_contacts(r, T, 3)  # the contacts' domains are known
    partner = CONTACTS[0].rsplit("@", 1)[1]
    r.note(ts, PERSON, ["someone@mail.ru"])  # mail.ru is known from now on
    seen = []
    for i, rcpts in enumerate(
        (
            [f"new1@{partner}", f"new2@{partner}", "citizen@mail.ru"],
            ["citizen2@mail.ru"],  # a known free-mail provider: a citizen
            ["first@never.kz", f"new3@{partner.upper()}"],  # a new domain is nobody's partner
            [CONTACTS[1]],  # not new at all
        )
    ):
        r.note(ts + 1 + i, PERSON, rcpts)
        seen.append(r.partners)
    assert seen == [2, 0, 1, 0]


def test_two_generations_bound_the_domains_and_carry_what_is_mailed_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    g = 8
    monkeypatch.setattr(anomaly.recipients, "DOMAIN_GENERATION", g)
    r = Recipients(T)
    ts = T + WARMUP_S
    n = iter(range(10_000))

    def new(domain: str) -> int:  # a new address each time, so its domain is looked at
        return r.note(ts, PERSON, [f"x{next(n)}@{domain}"])[2]

    assert [new(f"a{i}.com") for i in range(g)] == [1] * g  # the first generation, full
    assert new("a0.com") == 0  # in the previous generation: known, carried into the current
    assert [new(f"b{i}.com") for i in range(g - 1)] == [1] * (g - 1)  # the second one, full
    assert new("a0.com") == 0  # carried again
    assert new("a1.com") == 1  # not mailed for two generations: forgotten, new again
    sizes = []
    for i in range(3 * g):
        assert new(f"d{i}.com") == 1
        sizes.append(len(r._domains) + len(r._previous_domains))
    assert max(sizes) <= 2 * g and max(sizes) >= g
