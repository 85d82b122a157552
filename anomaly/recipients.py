"""Which recipients and domains a connection has mailed before, and how often each sender
reaches new ones.

`Recipients.note(sender, rcpts)` returns (new, expected, new_domains): how
many of the message's recipients this connection never mailed before (as far
as it remembers), how many of them were expected to be new from what that
sender usually does, and how many of the new ones are at a foreign domain
(outside `DOMESTIC`) it never mailed; `established` then says whether that
sender has a history (`ESTABLISHED` recipients learned): an established
sender that mostly mails its own contacts and turns to strangers is a
mailbox in someone else's hands, while a sender with little history may be
a new robot's first mass mailing. Spam to a bought or guessed list reaches
hundreds of foreign domains nobody there ever wrote to; a state body's
mailing reaches citizens at the same few free-mail providers and Kazakh
organisations, new .kz domains among them (a tax notice to every company).
A person mostly mails the same contacts; a notification robot mostly mails
citizens it never mailed; a newsletter mails its list. So
spam sent through any of them to bought or guessed addresses shows as new
recipients well beyond the sender's usual share, whatever its volume.

Bounded memory, ageing: the addresses are kept in two generations of at most
`GENERATION` each; when the current one fills it becomes the previous and the
oldest is forgotten (an address seen again is carried into the current one),
so a connection costs at most 2 x GENERATION addresses (and one message's), and an address not
mailed for a long time is new again. Domains are kept the same way, in
generations of `DOMAIN_GENERATION`, and only a new address's domain is looked
at (a known address's domain is known), so the domains cost nothing on the
usual traffic. A new address at a domain already mailed that is no free-mail
provider's (`anomaly.free_mail`) is someone new at a partner organisation
(`partners` of the last message): what a phisher in a person's mailbox writes
to, guessing colleagues' names, while a state body's mailings reach citizens.
Each sender's share of new recipients is
an exponentially weighted mean over its messages (rate `SENDER_RATE`), for at
most `MAX_SENDERS` senders; a sender is measured against its own share
weighed against a prior (as if `SPARSE_WEIGHT` recipients had shown it), so
a sender with little history (a newsletter's first issue) is not taken at its
word: the prior is what this connection's senders with little history
usually do (learned over their messages, at least `SPARSE_FLOOR`; `SPARSE_PRIOR`
before any), since a ministry of thousands of people, each mailing a few
times a day, has most of its senders with little history and they mostly
mail their contacts, while a new robot's mass mailing reaches strangers.
`maturity(ts)` says how complete the memory can be after the history seen.
The expectation of a message uses what was learned by the start of the
previous hour (`FREEZE_S`), always one to two hours old, so a sender turned
spammer is measured against what it did before, not against its spam; and a
sender's period is learned only when it ends, and not at all when it reached
`OUT_OF_CHARACTER` more new recipients than expected, so neither its spam nor
the hours after become its usual. The memory fills until `warm` (Features
gives anomaly.warmup's: a day at least, a whole working day seen), while
nothing is counted as new (then every recipient and domain is new), no share
learns (every sender would look like a robot mailing strangers) and `warm`
stays False.
The memory is kept in process only: after a restart it warms up again.
Nothing here raises.
"""

from __future__ import annotations

from anomaly.free_mail import FREE_MAIL
from anomaly.warmup import LEAST_S

GENERATION = 16_384  # addresses a generation holds
DOMAIN_GENERATION = 8_192  # domains a generation holds
DOMESTIC = (".kz", ".xn--80ao21a")  # Kazakhstan's top-level domains (.kz, .қаз)
MAX_SENDERS = 4_096  # senders whose own share is learned
SENDER_RATE = 0.05  # weight of a sender's newest message in its share
CONNECTION_RATE = 0.01  # weight of any message in the connection's share
PRIOR_SHARE = 0.2  # the connection's share before it learned any
SPARSE_PRIOR = 0.5  # the share assumed of a sender with little history, before any is learned...
SPARSE_FLOOR = 0.1  # ...and the least assumed once learned...
SPARSE_WEIGHT = 8.0  # ...weighing as this many recipients against what it sent
FREEZE_S = 3600.0  # expectations use what was learned by the start of this period
MATURE_S = 7 * 86_400.0  # history after which the memory is taken as complete
ESTABLISHED = SPARSE_WEIGHT  # recipients learned (as much as the prior weighs): a history
NEW_FOREIGN, AT_PARTNER = 1, 2  # what a new address's domain is (`_new_domain`)
OUT_OF_CHARACTER = 6.0  # new recipients beyond its expected in a period, from which a
# sender's share stops learning until the next period (a mailbox in other hands is not
# learned as its owner's habit)


class Recipients:
    __slots__ = (
        "_current",
        "_domains",
        "_first",
        "_next_sparse",
        "_period",
        "_period_end",
        "_previous",
        "_previous_domains",
        "_share",
        "_sparse",
        "_sparse_share",
        "_warm",
        "established",
        "partners",
        "share",
        "warm",
    )

    def __init__(self, ts: float, warm: float | None = None) -> None:
        """A memory begun at `ts`, counting the new from `warm` (a day later if None)."""
        self._current: set[str] = set()
        self._previous: set[str] = set()
        self._domains: set[str] = set()
        self._previous_domains: set[str] = set()
        # sender -> [share, recipients learned, expected share in this period, the period,
        # the expected share learned by this period's start, for the next period, then
        # what the current period saw (`_note`), learned when it ends (`_fold`)]
        self._share: dict[str, list[float]] = {}
        self.share = PRIOR_SHARE  # the connection's usual share of new recipients
        self._period, self._period_end = -1, 0.0
        self._sparse = self._next_sparse = SPARSE_PRIOR
        self._sparse_share = SPARSE_PRIOR  # of the messages of senders with little history
        self._first = ts
        self._warm = ts + LEAST_S if warm is None else warm
        self.warm = False
        self.established = False  # of the sender of the last message noted
        self.partners = 0  # of its new recipients, those at partner organisations

    def maturity(self, ts: float) -> float:
        """How complete the memory is taken to be, 0 to 1: a few days of history have
        not yet seen the contacts mailed once a week or a month."""
        return min(1.0, max(0.0, (ts - self._first) / MATURE_S))

    def _new_period(self, ts: float) -> None:
        period = int(ts // FREEZE_S)
        learned = max(self._sparse_share, SPARSE_FLOOR)
        self._sparse = self._next_sparse if period == self._period + 1 else learned
        self._next_sparse = learned
        self._period, self._period_end = period, (period + 1) * FREEZE_S

    def _expected_share(self, share: float, weight: float) -> float:
        """A sender's share as learned, weighed against the generous prior."""
        return (share * weight + self._sparse * SPARSE_WEIGHT) / (weight + SPARSE_WEIGHT)

    def note(self, ts: float, sender: str, rcpts: list[str]) -> tuple[int, float, int]:
        """(new recipients, expected new, those at new foreign domains) of one message;
        (0, 0.0, 0) while warming up. `partners` is then how many of the new are at a
        partner organisation."""
        current = self._current
        new = new_domains = partners = 0
        if len(rcpts) == 1:
            rcpt = rcpts[0]
            if rcpt not in current:
                current.add(rcpt)
                if rcpt not in self._previous:
                    new, code = 1, self._new_domain(rcpt)
                    new_domains, partners = code & NEW_FOREIGN, code >> 1
        else:
            unseen = set(rcpts).difference(current)
            current.update(unseen)
            fresh = unseen.difference(self._previous)
            new = len(fresh)
            for rcpt in fresh:
                code = self._new_domain(rcpt)
                new_domains += code & NEW_FOREIGN
                partners += code >> 1
        self.partners = partners
        if len(current) >= GENERATION:
            self._previous, self._current = current, set()
        n = len(rcpts)
        seen = new / n if n else 0.0
        if ts >= self._period_end:
            self._new_period(ts)
        if not self.warm:
            if ts < self._warm:  # every address is new: nothing to learn yet
                return 0, 0.0, 0
            self.warm = True
        self.share += CONNECTION_RATE * (seen - self.share)
        return new, self._expected(sender, n, seen), new_domains

    def _new_domain(self, rcpt: str) -> int:
        """Of `rcpt` (a new address): NEW_FOREIGN if its domain is foreign and was never
        mailed, AT_PARTNER if it was mailed and is no free-mail provider's, else 0;
        remembers the domain."""
        domain = rcpt[rcpt.rfind("@") + 1 :].lower()
        domains = self._domains
        if domain in domains:
            return 0 if domain in FREE_MAIL else AT_PARTNER
        domains.add(domain)
        if domain in self._previous_domains:
            code = 0 if domain in FREE_MAIL else AT_PARTNER
        else:
            code = 0 if domain.endswith(DOMESTIC) else NEW_FOREIGN
        if len(domains) >= DOMAIN_GENERATION:
            self._previous_domains, self._domains = domains, set()
        return code

    def _expected(self, sender: str, n: int, seen: float) -> float:
        """How many of `n` recipients `sender` was expected to reach new; notes `seen`, to be
        learned when its period ends (`_fold`)."""
        period = self._period
        own = self._share.get(sender)
        if own is None:
            self.established = False
            self._sparse_share += CONNECTION_RATE * (seen - self._sparse_share)
            sparse = self._sparse
            if len(self._share) < MAX_SENDERS:
                self._share[sender] = [sparse, 0.0, sparse, period, sparse, 0.0, 0.0, 0.0, 0, 0]
                self._note(self._share[sender], n, seen, sparse * n)
            return sparse * n
        if own[3] != period:
            self._fold(own)
            # what was learned by the last period's start, or by now when the sender
            # was silent since before it: always at least one period old
            learned = self._expected_share(own[0], own[1])
            own[2] = own[4] if own[3] == period - 1 else learned
            own[3], own[4] = period, learned
        self.established = own[1] >= ESTABLISHED
        if not self.established:
            self._sparse_share += CONNECTION_RATE * (seen - self._sparse_share)
        expected = own[2] * n
        self._note(own, n, seen, expected)
        return expected

    @staticmethod
    def _note(own: list[float], n: int, seen: float, expected: float) -> None:
        """One message of the sender's current period: [5] new, [6] expected new, [7] the
        sum of its shares, [8] messages, [9] recipients."""
        own[5] += seen * n
        own[6] += expected
        own[7] += seen
        own[8] += 1
        own[9] += n

    @staticmethod
    def _fold(own: list[float]) -> None:
        """Learn the sender's last period, unless it was out of character (OUT_OF_CHARACTER
        more new recipients than expected): as SENDER_RATE per message, or its mean when the
        sender had no history yet."""
        msgs = own[8]
        if msgs and own[5] - own[6] < OUT_OF_CHARACTER:
            mean = own[7] / msgs
            keep = 0.0 if own[1] == 0.0 else (1.0 - SENDER_RATE) ** msgs
            own[0] = keep * own[0] + (1.0 - keep) * mean
            own[1] += own[9]
        own[5] = own[6] = own[7] = own[8] = own[9] = 0.0
