"""Which recipients a connection has mailed before, and how often each sender reaches new ones.

`Recipients.note(sender, rcpts)` returns (new, expected): how many of the
message's recipients this connection never mailed before (as far as it
remembers), and how many of them were expected to be new from what that
sender usually does. A person mostly mails the same contacts; a notification
robot mostly mails citizens it never mailed; a newsletter mails its list. So
spam sent through any of them to bought or guessed addresses shows as new
recipients well beyond the sender's usual share, whatever its volume.

Bounded memory, ageing: the addresses are kept in two generations of at most
`GENERATION` each; when the current one fills it becomes the previous and the
oldest is forgotten (an address seen again is carried into the current one),
so a connection costs at most 2 x GENERATION addresses, and an address not
mailed for a long time is new again. Each sender's share of new recipients is
an exponentially weighted mean over its messages (rate `SENDER_RATE`), for at
most `MAX_SENDERS` senders; a sender is measured against its own share
weighed against a generous prior (`SPARSE_PRIOR`, or the connection's share
where higher, as if `SPARSE_WEIGHT` recipients had shown it), so a sender
with little history (a newsletter's first issue) is not taken at its word.
`maturity(ts)` says how complete the memory can be after the history seen. The memory fills for
`WARMUP_S` after the first event before any share is learned (then every
recipient is new) and `warm` stays False till then. The memory is kept in
process only: after a restart it warms up again. Nothing here raises.
"""

from __future__ import annotations

GENERATION = 16_384  # addresses a generation holds
MAX_SENDERS = 4_096  # senders whose own share is learned
SENDER_RATE = 0.05  # weight of a sender's newest message in its share
CONNECTION_RATE = 0.01  # weight of any message in the connection's share
PRIOR_SHARE = 0.2  # the connection's share before it learned any
SPARSE_PRIOR = 0.5  # the share assumed of a sender with little history...
SPARSE_WEIGHT = 8.0  # ...weighing as this many recipients against what it sent
FREEZE_S = 3600.0  # expectations use what was learned by the start of this period
WARMUP_S = 86_400.0  # a day of filling before recipients count as new
MATURE_S = 7 * 86_400.0  # history after which the memory is taken as complete


class Recipients:
    __slots__ = (
        "_current",
        "_first",
        "_frozen",
        "_period",
        "_previous",
        "_share",
        "_warm_at",
        "share",
        "warm",
    )

    def __init__(self, ts: float) -> None:
        self._current: set[str] = set()
        self._previous: set[str] = set()
        # sender -> [share, recipients seen, both as the period began, the period]
        self._share: dict[str, list[float]] = {}
        self.share = PRIOR_SHARE  # the connection's usual share of new recipients
        self._frozen, self._period = PRIOR_SHARE, -1
        self._first = ts
        self._warm_at = ts + WARMUP_S
        self.warm = False

    def maturity(self, ts: float) -> float:
        """How complete the memory is taken to be, 0 to 1: a few days of history have
        not yet seen the contacts mailed once a week or a month."""
        return min(1.0, max(0.0, (ts - self._first) / MATURE_S))

    def note(self, ts: float, sender: str, rcpts: list[str]) -> tuple[int, float]:
        """(new recipients, expected new) of one message; (0, 0.0) while warming up."""
        current = self._current
        if len(rcpts) == 1:
            rcpt = rcpts[0]
            new = 0
            if rcpt not in current:
                current.add(rcpt)
                new = 0 if rcpt in self._previous else 1
        else:
            unseen = set(rcpts).difference(current)
            current.update(unseen)
            new = len(unseen.difference(self._previous))
        if len(current) >= GENERATION:
            self._previous, self._current = current, set()
        n = len(rcpts)
        seen = new / n if n else 0.0
        # The expectation uses what was learned by the start of the period (FREEZE_S), so
        # a sender turned spammer does not make its own spam usual within minutes.
        period = int(ts // FREEZE_S)
        if period != self._period:
            self._period, self._frozen = period, self.share
        sparse = self._frozen if self._frozen > SPARSE_PRIOR else SPARSE_PRIOR
        own = self._share.get(sender)
        if own is None:
            expected = sparse * n
            if len(self._share) < MAX_SENDERS:
                self._share[sender] = [sparse + SENDER_RATE * (seen - sparse), n, sparse, 0, period]
        else:
            if own[4] != period:
                own[2], own[3], own[4] = own[0], own[1], period
            weight = own[3]
            expected = n * (own[2] * weight + sparse * SPARSE_WEIGHT) / (weight + SPARSE_WEIGHT)
            own[0] += SENDER_RATE * (seen - own[0])
            own[1] += n
        self.share += CONNECTION_RATE * (seen - self.share)
        if self.warm:
            return new, expected
        if ts < self._warm_at:
            return 0, 0.0
        self.warm = True
        return new, expected
