"""People turning to strangers: each sender's surprise beyond its own usual and beyond chance
among the people active, capped; several at once corroborate a suspension; one alone weighs
only when its strangers came message after message, and then at most LONE_CAP (one circular
to many strangers is one message), and corroborates only when its strangers are new people at
the organisations the connection already mails (not citizens at free-mail providers)."""

from __future__ import annotations

import math
import re

import pytest

from anomaly import surprise
from anomaly.score import LATERAL, LONE, LONE_CAP, LONE_MESSAGES, NOVEL, STRANGERS
from anomaly.strangers import DISPERSION_K, PER_SENDER, SLACK, Tally, Turned, note, turned
from tests.unit.test_anomaly_score import CONTACTS, PEOPLE, office

ROBOT = "noreply@x.gov.kz"


def test_each_sender_counts_its_own_surprise_beyond_chance_and_at_most_per_sender() -> None:
    minute: Tally = {}
    note(minute, "a", 1, 0.5)  # within its usual: nothing
    note(minute, "b", 8, 0.5)
    note(minute, "c", 400, 1.0)  # one sender, a great many strangers: PER_SENDER at most
    later: Tally = {}
    note(later, "b", 4, 0.5)  # b's minutes add up: 12 new against 1 expected
    found = turned([minute, later])
    b = surprise.count(12, 1.0 + SLACK, 1.0 + (1.0 + SLACK) / DISPERSION_K) - math.log10(3)
    assert found.senders == 2 and found.decades == pytest.approx(b + PER_SENDER)
    assert found.strangers == pytest.approx(11 + 399) and found.new == 412
    assert found.messages == 3  # b's two and c's one: a is within its usual
    assert turned([]) == Turned(0.0, 0, 0.0, 0.0, 0.0, 0.0)


def test_the_strangers_at_partner_organisations_are_counted_apart() -> None:
    minute: Tally = {}
    note(minute, "b", 8, 0.5, partners=6)
    note(minute, "b", 4, 0.5, partners=1)
    assert (turned([minute]).partners, turned([minute]).new) == (7, 12)


def test_the_more_people_active_the_more_one_of_them_may_do_by_chance() -> None:
    alone: Tally = {"b": [8, 0.5, 8, 0], "c": [8, 0.5, 8, 0]}
    crowd: Tally = alone | {f"p{i}": [0, 0.5, 0, 0] for i in range(500)}
    assert turned([alone])[0] > turned([crowd])[0] == 0.0


def test_three_people_each_mailing_a_few_strangers_corroborate() -> None:
    conn, ts = office(7)
    for i in range(36):  # three people, twelve strangers each, in six minutes
        conn.send(ts + 10 * i, PEOPLE[i % 3], [f"x{i}@mail{i}.ru"])
    found = conn.assess(ts + 360)
    strangers = next(f for f in found.findings if f.name == STRANGERS)
    assert strangers.weight > 1.0 and found.corroboration >= strangers.weight
    assert "3 of its people" in strangers.what


def test_one_person_mailing_citizens_message_after_message_weighs_at_most_lone_cap() -> None:
    conn, ts = office(7)
    for i in range(150):
        conn.send(ts + 2 * i, PEOPLE[0], [f"x{i}@mail.kz"])
    found = conn.assess(ts + 300)
    lone = next(f for f in found.findings if f.name == LONE)
    assert 0.0 < lone.weight <= LONE_CAP and NOVEL in {f.name for f in found.findings}
    said = r"one of its people with a history mailed, in 1\d\d messages, strangers beyond"
    assert re.match(said, lone.what), lone.what
    assert found.corroboration == 0.0, "one mailbox's mailing to citizens is a mailing"


def test_one_person_writing_to_new_people_at_its_partners_corroborates() -> None:
    conn, ts = office(7)
    for i in range(40):  # new names at the seven organisations the office mails, 3 a minute
        conn.send(ts + 20 * i, PEOPLE[0], [f"x{i}@y{i % 7}.kz"])
    found = conn.assess(ts + 800)
    lateral = next(f for f in found.findings if f.name == LATERAL)
    assert 0.0 < lateral.weight <= LONE_CAP
    assert found.corroboration == pytest.approx(lateral.weight)
    assert re.search(r"new people at its partner organisations \(\d+\)", lateral.what)
    assert LONE not in {f.name for f in found.findings}


def test_one_person_in_few_messages_is_not_a_finding() -> None:
    conn, ts = office(7)
    for i in range(LONE_MESSAGES - 1):  # a circular to many strangers, then a few more
        rcpts = [f"x{i}.{j}@y{j % 7}.kz" for j in range(45 if i == 0 else 3)]
        conn.send(ts + 20 * i, PEOPLE[0], rcpts)
    found = conn.assess(ts + 300)
    assert found.score > 0.0, "the new recipients weigh"
    assert not {STRANGERS, LONE, LATERAL} & {f.name for f in found.findings}


def test_a_robot_that_mails_citizens_is_not_a_person_turned() -> None:
    conn, ts = office(7)
    for i in range(400):  # a notification robot's history: mostly citizens never mailed
        conn.send(ts + 30 * i, ROBOT, [f"c{i}@mail.ru" if i % 5 else CONTACTS[PEOPLE[0]][0]])
    ts += 30 * 400 + 7200  # its share is learned (the expectation is one to two hours old)
    for i in range(60):  # the robot and one person, both to strangers
        conn.send(ts + 5 * i, ROBOT, [f"d{i}@mail.ru"])
        conn.send(ts + 5 * i + 1, PEOPLE[1], [f"e{i}@mail.ru"])
    found = conn.assess(ts + 300)
    assert STRANGERS not in {f.name for f in found.findings}
