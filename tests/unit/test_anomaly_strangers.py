"""Several people turning to strangers at once: each sender's surprise beyond its own usual
and beyond chance among the people active, capped; one sender is never enough; in the score
it corroborates a suspension."""

from __future__ import annotations

import math

import pytest

from anomaly import surprise
from anomaly.score import NOVEL, STRANGERS
from anomaly.strangers import DISPERSION_K, PER_SENDER, SLACK, Tally, note, turned
from tests.unit.test_anomaly_score import CONTACTS, PEOPLE, office

ROBOT = "noreply@x.gov.kz"


def test_each_sender_counts_its_own_surprise_beyond_chance_and_at_most_per_sender() -> None:
    minute: Tally = {}
    note(minute, "a", 1, 0.5)  # within its usual: nothing
    note(minute, "b", 8, 0.5)
    note(minute, "c", 400, 1.0)  # one sender, a great many strangers: PER_SENDER at most
    later: Tally = {}
    note(later, "b", 4, 0.5)  # b's minutes add up: 12 new against 1 expected
    decades, senders, strangers = turned([minute, later])
    b = surprise.count(12, 1.0 + SLACK, 1.0 + (1.0 + SLACK) / DISPERSION_K) - math.log10(3)
    assert senders == 2 and decades == pytest.approx(b + PER_SENDER)
    assert strangers == pytest.approx(11 + 399)
    assert turned([]) == (0.0, 0, 0.0)


def test_the_more_people_active_the_more_one_of_them_may_do_by_chance() -> None:
    alone: Tally = {"b": [8, 0.5], "c": [8, 0.5]}
    crowd: Tally = alone | {f"p{i}": [0, 0.5] for i in range(500)}
    assert turned([alone])[0] > turned([crowd])[0] == 0.0


def test_three_people_each_mailing_a_few_strangers_corroborate() -> None:
    conn, ts = office(7)
    for i in range(36):  # three people, twelve strangers each, in six minutes
        conn.send(ts + 10 * i, PEOPLE[i % 3], [f"x{i}@mail{i}.ru"])
    found = conn.assess(ts + 360)
    strangers = next(f for f in found.findings if f.name == STRANGERS)
    assert strangers.weight > 1.0 and found.corroboration >= strangers.weight
    assert "3 of its people" in strangers.what


def test_one_person_however_many_strangers_is_not_several() -> None:
    conn, ts = office(7)
    for i in range(150):
        conn.send(ts + 2 * i, PEOPLE[0], [f"x{i}@y{i % 7}.kz"])
    found = conn.assess(ts + 300)
    assert NOVEL in {f.name for f in found.findings}
    assert STRANGERS not in {f.name for f in found.findings}


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
