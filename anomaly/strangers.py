"""Several of a connection's people turning to strangers at once: mailboxes in other hands.

A person mostly mails its own contacts; `anomaly.recipients` learns each
sender's share of recipients never mailed before. When several senders with
a history of their own (`Recipients.established`) and a personal share (below
`PERSONAL_SHARE`: not a robot that mails citizens) each reach clearly more
strangers than that share expects, in the same window, their mailboxes are
being used by someone else: spam spread thin over many accounts, or hidden in
a reporting surge.

Each sender's own surprise (its new recipients against its expected, as
`anomaly.score` measures new recipients) is lowered by the decades of chance
that one of the window's active people gets that far by luck (log10 of their
number: a ministry of hundreds always has a few people writing to strangers
in an hour), counted at most `PER_SENDER` decades (the evidence is how many
mailboxes turned, not how much one of them sent), and summed over the senders
left with any. One sender alone is judged by the score with more care
(`anomaly.score`: a planned mass mailing from the chancellery's address is one
sender too, sent in a burst; a phisher in a person's mailbox writes to
colleagues it never wrote to a few at a time, message after message), so
`Turned` also counts the messages that reached strangers.

`Tally` keeps one minute's [new, expected, messages with a new recipient, new
at partner organisations] per such sender, filled by `anomaly.features`;
`turned(tallies)` sums a window's tallies into a `Turned`. Pure computation; nothing raises.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

from anomaly import surprise

PERSONAL_SHARE = 0.15  # a sender expected to reach more new than this is a robot, not a person
SLACK = 2.0  # new recipients any person may reach beyond its usual share
DISPERSION_K = 10.0  # overdispersion of a person's new recipients: variance = mu + mu²/K
PER_SENDER = 4.0  # decades one sender counts at most

# sender -> [new, expected new, messages with new, new at partner organisations], a minute
Tally = dict[str, list[float]]


class Turned(NamedTuple):
    decades: float  # the senders' surprises beyond chance, each at most PER_SENDER
    senders: int  # how many turned
    strangers: float  # their new recipients beyond the expected
    messages: float  # their messages that reached a new recipient
    partners: float  # their new recipients at partner organisations (anomaly.recipients)
    new: float  # their new recipients


def note(
    tally: Tally,
    sender: str,
    new: float,
    expected: float,
    partners: float = 0.0,
    messages: float = 1.0,
) -> None:
    """One message (or `messages` of them) of an established personal sender: its new and
    expected recipients, and how many of the new are at partner organisations."""
    reached = messages if new > 0.0 else 0.0
    entry = tally.get(sender)
    if entry is None:
        tally[sender] = [new, expected, reached, partners]
    else:
        entry[0] += new
        entry[1] += expected
        entry[2] += reached
        entry[3] += partners


def turned(tallies: Iterable[Tally]) -> Turned:
    """The senders of the minutes' tallies who turned to strangers."""
    merged: Tally = {}
    for tally in tallies:
        for sender, (new, expected, reached, partners) in tally.items():
            note(merged, sender, new, expected, partners, reached)
    chance = math.log10(max(len(merged), 1))  # one of this many people, by luck
    decades, senders, strangers, messages, at_partners, total = 0.0, 0, 0.0, 0.0, 0.0, 0.0
    for new, expected, reached, partners in merged.values():
        mu = expected + SLACK
        weight = surprise.count(new, mu, 1.0 + mu / DISPERSION_K) - chance
        if weight > 0.0:
            decades += min(weight, PER_SENDER)
            senders += 1
            strangers += new - expected
            messages += reached
            at_partners += partners
            total += new
    return Turned(decades, senders, strangers, messages, at_partners, total)
