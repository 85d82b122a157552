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
left with any. One sender alone never counts (a planned mass mailing from the
chancellery's address is one sender; the other findings judge one mailbox).

`Tally` keeps one minute's (new, expected) per such sender, filled by
`anomaly.features`; `turned(tallies)` sums a window's tallies into
(decades, senders turned, strangers beyond their expected). Pure computation;
nothing raises.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from anomaly import surprise

PERSONAL_SHARE = 0.15  # a sender expected to reach more new than this is a robot, not a person
SLACK = 2.0  # new recipients any person may reach beyond its usual share
DISPERSION_K = 10.0  # overdispersion of a person's new recipients: variance = mu + mu²/K
PER_SENDER = 4.0  # decades one sender counts at most

Tally = dict[str, list[float]]  # sender -> [new recipients, expected new] in one minute


def note(tally: Tally, sender: str, new: float, expected: float) -> None:
    """One message of an established personal sender: its new and expected recipients."""
    entry = tally.get(sender)
    if entry is None:
        tally[sender] = [new, expected]
    else:
        entry[0] += new
        entry[1] += expected


def turned(tallies: Iterable[Tally]) -> tuple[float, int, float]:
    """(decades, senders turned, their strangers beyond the expected) of the minutes' tallies."""
    merged: Tally = {}
    for tally in tallies:
        for sender, (new, expected) in tally.items():
            note(merged, sender, new, expected)
    chance = math.log10(max(len(merged), 1))  # one of this many people, by luck
    decades, senders, strangers = 0.0, 0, 0.0
    for new, expected in merged.values():
        mu = expected + SLACK
        weight = surprise.count(new, mu, 1.0 + mu / DISPERSION_K) - chance
        if weight > 0.0:
            decades += min(weight, PER_SENDER)
            senders += 1
            strangers += new - expected
    return decades, senders, strangers
