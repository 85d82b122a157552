"""Per-connection traffic features over sliding windows, driven by event time.

`Features` keeps, for one connection, running totals of its counters since
it was first seen (messages, recipients, null-sender messages, messages from
senders new to the connection, delivery outcomes, bounces, invalid-recipient
bounces, deferrals, spam or policy refusals, recipients never mailed before
and how many of those its senders usually reach, and those at a foreign
domain never mailed before: anomaly.recipients; complaints received through a
feedback loop, a live node's only; messages from a sender at a domain the
connection never sent from, after the warm-up, to a recipient it never
mailed: a mailbox forwarding its mail keeps the senders but not the
strangers; and of senders never seen whose first message reached a recipient
never mailed, each counted once) and,
for each minute of the last hour that saw traffic, the totals as that minute
began: a window of the last 1, 5 or 60 minutes is
the totals now less the totals as its first minute with traffic began, so an
event costs a counter update or two and a new minute a copy of the totals.
It also keeps, per minute, the new and expected recipients of each of its
people with a history (anomaly.strangers: `turned(minutes)` counts those
who turned to strangers), and the last hour's messages (sender, recipients) as given, so the
distinct recipient domains and senders are counted only when asked, and so
is the busiest sender→recipient pair of the current 5-minute block (a mail
loop repeats one pair; `loops` follows a pair's growing sizes, anomaly.loops):
`top_pair_reaches(n)` counts the pairs only when cheaper bounds (the block's
recipients, then one sender's) allow n, so
per-recipient work is paid for only by a connection that might loop. Time
only moves forward: an event older than the newest one is counted in the
newest minute. Nothing here raises.

Senders are counted by `anomaly.sender_key` (a list's VERP or BATV tags, SRS
and message numbers taken off: one list, one sender), and count as new only
from `warm_ts` (anomaly.warmup: a day after the connection's first event, and
after the first working day the detector saw whole).

Invalid-recipient bounces: the trace carries only the reply code, and in the
recorded traffic 550 is what unknown recipients get (5.1.1); 551 and 553 are
counted as bounces but not as invalid recipients. 554 is a refusal as spam
or by policy. `before_hour()` gives the counters of everything before the
last hour: the connection's usual shares, not raised by a burst of now.

The outcomes of one message to a list (`LIST_RCPTS` recipients or more) are
alike: a stale list's dead addresses all bounce. So the features remember,
for the hour a message came and the next, which message each of its
recipients belongs to (at most `MAX_MAPPED` recipients an hour: the rest
count as outcomes of no known message), and count each minute's outcomes by
message; `outcome_messages(minutes)` sums them for anomaly.score.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Hashable, Sequence
from operator import sub
from typing import NamedTuple

from anomaly import strangers
from anomaly.loops import GrowingPairs
from anomaly.recipients import Recipients
from anomaly.sender_key import sender_key
from anomaly.trace_reader import BOUNCED, DEFERRED
from anomaly.warmup import warm_ts

(
    MSG,
    RCPT,
    NULL,
    NEW_SENDER,
    OUT,
    BOUNCE,
    INVALID,
    DEFER,
    NEW_RCPT,
    EXPECTED_NEW,
    POLICY,
    NEW_DOMAIN,
    COMPLAINT,
    NEW_SENDER_DOMAIN,
    NEW_SENDER_STRANGER,
) = range(15)  # counters, as Window's
_WIDTH = 15
MINUTE_S = 60.0
_HOUR = 60  # minutes kept: the longest window
_BLOCK = 5  # minutes of a sender→recipient pair block
INVALID_RCPT_CODES = frozenset({550})
POLICY_CODES = frozenset({554})  # refused as spam or by policy (a live node also reads 5.7.x)
OLD, NEW_SENDER_SEEN, NEW_DOMAIN_SENDER = range(3)  # what `_new_sender` found
_MAX_SENDERS = 50_000
_MAX_SENDER_DOMAINS = 5_000
_Msg = tuple[str, list[str]]
LIST_RCPTS = 10  # a message to this many is a list's: its dead addresses bounce together
MAX_MAPPED = 20_000  # recipients whose message is remembered, an hour at most (the rest: alone)
# minute, totals as it began, its messages, its established people's strangers
# (anomaly.strangers), its delivery outcomes by their message (its number)
_Minute = tuple[int, tuple[float, ...], list[_Msg], strangers.Tally, dict[float, int]]


class Window(NamedTuple):
    """The counters of one window (the last `minutes` minutes, the current one included)."""

    minutes: int
    msgs: int
    rcpts: int
    null: int
    new_senders: int
    outcomes: int
    bounced: int
    invalid: int
    deferred: int
    new_rcpts: int  # recipients never mailed before from this connection
    expected_new: float  # how many of them its senders usually reach that are new
    policy: int  # refused as spam or by policy
    new_domains: int  # new recipients at a foreign domain never mailed before
    complaints: int  # feedback-loop complaints received (a live node's; none in a trace)
    new_sender_domains: int  # from a sender at a domain it never sent from, to a stranger
    new_sender_strangers: int  # senders never seen whose first message reached a stranger

    @property
    def bounce_ratio(self) -> float:
        return self.bounced / self.outcomes if self.outcomes else 0.0

    @property
    def invalid_ratio(self) -> float:
        return self.invalid / self.outcomes if self.outcomes else 0.0

    @property
    def defer_ratio(self) -> float:
        return self.deferred / self.outcomes if self.outcomes else 0.0

    @property
    def null_share(self) -> float:
        return self.null / self.msgs if self.msgs else 0.0

    @property
    def new_sender_share(self) -> float:
        return self.new_senders / self.msgs if self.msgs else 0.0


_new_tuple = tuple.__new__  # a Window from its values without the Python-level __new__


class Features:
    __slots__ = (
        "_block",
        "_block_now",
        "_block_rcpts",
        "_by_sender",
        "_map_hour",
        "_message_of",
        "_message_of_before",
        "_minute_end",
        "_minutes",
        "_msgs",
        "_outcomes_by_message",
        "_pair_block",
        "_pairs",
        "_strangers",
        "_totals",
        "first_ts",
        "known_sender_domains",
        "known_senders",
        "loops",
        "minute",
        "recipients",
        "warm_ts",
    )

    def __init__(self, ts: float, since: float | None = None) -> None:
        """A connection first seen at `ts` by a detector listening `since` (`ts` if None)."""
        self.first_ts = ts
        # senders and recipients count as new from then (anomaly.warmup)
        self.warm_ts = warm_ts(ts, ts if since is None else since)
        self.known_senders: set[str] = set()
        self.known_sender_domains: set[str] = set()
        self.recipients = Recipients(ts, self.warm_ts)
        self.loops = GrowingPairs()
        self._totals: list[float] = [0] * _WIDTH  # every event since the first, by counter
        self._minutes: deque[_Minute] = deque()  # the last hour's minutes with traffic
        # each recipient's last message (its number), this hour and the hour before
        self._message_of: dict[str, float] = {}
        self._message_of_before: dict[str, float] = {}
        self._map_hour = int(ts // MINUTE_S) // _HOUR  # the hour whose messages it holds
        self._start_minute(int(ts // MINUTE_S))
        self._pair_block = self._block_now
        self._new_block()

    def _start_minute(self, minute: int) -> None:
        """Make `minute` (a later one) the current one; forget the minutes out of the hour."""
        self.minute = minute
        self._minute_end = (minute + 1) * MINUTE_S
        self._block_now = minute // _BLOCK
        self._msgs: list[_Msg] = []
        self._strangers: strangers.Tally = {}
        self._outcomes_by_message: dict[float, int] = {}
        if minute // _HOUR != self._map_hour:  # an hour's messages are remembered for two
            self._map_hour = minute // _HOUR
            self._message_of_before, self._message_of = self._message_of, {}
        minutes = self._minutes
        by_message = self._outcomes_by_message
        minutes.append((minute, tuple(self._totals), self._msgs, self._strangers, by_message))
        oldest = minute - _HOUR + 1
        while minutes[0][0] < oldest:
            minutes.popleft()

    def _new_block(self) -> None:
        self._block: list[_Msg] = []  # messages of this 5-min block, counted lazily
        self._block_rcpts = 0
        self._by_sender: _Tally | None = None  # recipients of each sender, once asked
        self._pairs: _Tally | None = None  # messages of each sender->recipient pair, once asked

    def accepted(self, ts: float, sender: str, rcpts: list[str], size: int = 0) -> None:
        if ts >= self._minute_end:
            self._start_minute(int(ts // MINUTE_S))
        n = len(rcpts)
        totals = self._totals
        totals[MSG] += 1
        totals[RCPT] += n
        new_sender = OLD
        if not sender:
            totals[NULL] += 1
        elif sender not in self.known_senders:  # a known one is its own key (sender_key)
            sender = sender_key(sender)
            if sender not in self.known_senders:
                new_sender = self._new_sender(ts, sender)
        if n == 1 and size:
            self.loops.note(ts, sender, rcpts[0], size)
        if n >= LIST_RCPTS:  # a person's few recipients are as many choices
            self._map(totals[MSG], rcpts)
        recipients = self.recipients
        new, expected, new_domains = recipients.note(ts, sender, rcpts)
        if expected or new:
            totals[NEW_RCPT] += new
            totals[EXPECTED_NEW] += expected
            totals[NEW_DOMAIN] += new_domains
            if new_sender and new:  # forwarding goes to whom it went before: not counted
                totals[NEW_SENDER_STRANGER] += 1
                if new_sender == NEW_DOMAIN_SENDER:
                    totals[NEW_SENDER_DOMAIN] += 1
            if recipients.established and expected < strangers.PERSONAL_SHARE * n:
                strangers.note(self._strangers, sender, new, expected, recipients.partners)
        msg = (sender, rcpts)
        self._msgs.append(msg)
        if self._block_now != self._pair_block:
            self._pair_block = self._block_now
            self._new_block()
        self._block.append(msg)
        self._block_rcpts += n

    def _new_sender(self, ts: float, sender: str) -> int:
        """Count a sender never seen: OLD during the warm-up, else NEW_SENDER_SEEN, or
        NEW_DOMAIN_SENDER when its domain is new too."""
        warm = ts >= self.warm_ts
        if warm:
            self._totals[NEW_SENDER] += 1
        if len(self.known_senders) < _MAX_SENDERS:
            self.known_senders.add(sender)
        domain = sender[sender.rfind("@") + 1 :].lower()  # only a new sender has a new domain
        if domain in self.known_sender_domains:
            return NEW_SENDER_SEEN if warm else OLD
        if len(self.known_sender_domains) < _MAX_SENDER_DOMAINS:
            self.known_sender_domains.add(domain)
        return NEW_DOMAIN_SENDER if warm else OLD

    def _map(self, message: float, rcpts: list[str]) -> None:
        """Remember `message` as the message of `rcpts`' outcomes to come (an hour or two)."""
        mapped = self._message_of
        room = MAX_MAPPED - len(mapped)
        if room > 0:
            for rcpt in rcpts if len(rcpts) <= room else rcpts[:room]:
                mapped[rcpt] = message

    def outcome(self, ts: float, kind: int, code: int, rcpt: str = "") -> None:
        """One delivery attempt to `rcpt` ("": unknown): kind 1 delivered, 2 deferred, 3
        bounced (anomaly.trace_reader)."""
        if ts >= self._minute_end:
            self._start_minute(int(ts // MINUTE_S))
        # message numbers start at 1: a falsy lookup is a miss
        message = self._message_of.get(rcpt) or self._message_of_before.get(rcpt)
        if message is not None:
            by_message = self._outcomes_by_message
            by_message[message] = by_message.get(message, 0) + 1
        totals = self._totals
        totals[OUT] += 1
        if kind == BOUNCED:
            totals[BOUNCE] += 1
            if code in INVALID_RCPT_CODES:
                totals[INVALID] += 1
            elif code in POLICY_CODES:
                totals[POLICY] += 1
        elif kind == DEFERRED:
            totals[DEFER] += 1

    def complained(self, ts: float) -> None:
        """One feedback-loop complaint about the connection's mail came in (a live node)."""
        if ts >= self._minute_end:
            self._start_minute(int(ts // MINUTE_S))
        self._totals[COMPLAINT] += 1

    def forget_pairs(self) -> None:
        """Count the current 5-minute block's pairs afresh from the next message on (what
        came before was a backlog after an outage, not a loop)."""
        self._new_block()

    @property
    def top_pair(self) -> int:
        """Most messages of one sender->recipient pair in the 5-min block of the last message."""
        pairs = self._pairs = self._pairs or _Tally()
        if pairs.done < len(self._block):
            new = self._block[pairs.done :]
            pairs.count([(sender, rcpt) for sender, rcpts in new for rcpt in rcpts])
            pairs.done = len(self._block)
        return pairs.top

    def top_pair_reaches(self, least: int) -> bool:
        """Whether `top_pair >= least`, counting pairs only when cheaper bounds allow it: the
        block's recipients, then the most recipients of one sender in it."""
        if self._block_rcpts < least:
            return False
        senders = self._by_sender = self._by_sender or _Tally()
        if senders.done < len(self._block):
            for sender, rcpts in self._block[senders.done :]:
                senders.add(sender, len(rcpts))
            senders.done = len(self._block)
        return senders.top >= least and self.top_pair >= least

    def _recent(self, minutes: int) -> list[_Minute]:
        """The minutes with traffic among the last `minutes` (≤ 60), the current one first."""
        oldest = self.minute - minutes + 1
        found = []
        for m in reversed(self._minutes):
            if m[0] < oldest:
                break
            found.append(m)
        return found

    def window(self, minutes: int) -> Window:
        """The counters of the last `minutes` minutes (1 to 60) up to the newest event: the
        totals less the totals as the window's first minute with traffic began."""
        if minutes >= _HOUR:
            minutes, began = _HOUR, self._minutes[0][1]
        else:
            began = self._recent(minutes)[-1][1]
        return _new_tuple(Window, (minutes, *map(sub, self._totals, began)))

    def before_hour(self) -> Window:
        """The counters of everything before the last hour: what is usual for the connection
        (a burst of the last hour does not raise its own usual)."""
        return _new_tuple(Window, (0, *self._minutes[0][1]))

    def turned(self, minutes: int) -> strangers.Turned:
        """The people who turned to strangers in the last `minutes` minutes (≤ 60;
        anomaly.strangers)."""
        return strangers.turned(m[3] for m in self._recent(min(minutes, _HOUR)))

    def outcome_messages(self, minutes: int) -> tuple[int, int]:
        """(Σ m², Σ m) of the outcomes in the last `minutes` minutes (≤ 60) by their message,
        m each message's, of the messages to at least LIST_RCPTS (the others are not in it):
        how much of the evidence of outcomes came in the same lists' messages (a list's
        dead addresses all bounce)."""
        merged: dict[float, int] = {}
        for m in self._recent(min(minutes, _HOUR)):
            for message, n in m[4].items():
                merged[message] = merged.get(message, 0) + n
        values = merged.values()
        return sum(n * n for n in values), sum(values)

    def distinct(self, minutes: int) -> tuple[int, int]:
        """(recipient domains, envelope senders) seen in the last `minutes` minutes (≤ 60)."""
        domains: set[str] = set()
        senders: set[str] = set()
        for _, _, msgs, _, _ in self._recent(min(minutes, _HOUR)):
            for sender, rcpts in msgs:
                senders.add(sender)
                domains.update([r[r.rfind("@") + 1 :] for r in rcpts])
        return len(domains), len(senders)


class _Tally:
    """Counts by key and the highest count, over the block's first `done` messages."""

    __slots__ = ("counts", "done", "top")

    def __init__(self) -> None:
        self.counts: Counter[Hashable] = Counter()
        self.done = self.top = 0

    def add(self, key: Hashable, n: int) -> None:
        counts = self.counts
        counts[key] = total = counts.get(key, 0) + n
        if total > self.top:
            self.top = total

    def count(self, keys: Sequence[Hashable]) -> None:
        """One more for each of `keys`."""
        if keys:
            counts = self.counts
            counts.update(keys)
            self.top = max(self.top, *map(counts.__getitem__, keys))
