"""Per-connection traffic features over sliding windows, driven by event time.

`Features` keeps, for one connection, per-minute counters in a 60-minute ring
(messages, recipients, null-sender messages, messages from senders new to the
connection, delivery outcomes, bounces, invalid-recipient bounces, deferrals),
so a window of the last 1, 5 or 60 minutes is a sum over its slots. It also
keeps the recipient domains and senders seen in the last hour (distinct counts
on demand) and the busiest sender→recipient pair of the current 5-minute block
(a mail loop repeats one pair). Time only moves forward: an event older than
the newest one is counted in the newest minute. Nothing here raises.

Invalid-recipient bounces: the trace carries only the reply code, and in the
recorded traffic 550 is what unknown recipients get (5.1.1); 551 and 553 are
counted as bounces but not as invalid recipients.
"""

from __future__ import annotations

from dataclasses import dataclass

MSG, RCPT, NULL, NEW_SENDER, OUT, BOUNCE, INVALID, DEFER = range(8)
_WIDTH = 8
_RING = 60  # minutes kept: the longest window, whose sums are kept running
INVALID_RCPT_CODES = frozenset({550})
_ZEROS = [0] * _WIDTH
SENDER_WARMUP_S = 86_400.0  # senders count as "new" only after a day of history
_MAX_SENDERS = 50_000


@dataclass(frozen=True, slots=True)
class Window:
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


class Features:
    __slots__ = (
        "_counts",
        "_domains",
        "_hour",
        "_pair_block",
        "_pairs",
        "_senders",
        "first_ts",
        "known_senders",
        "minute",
        "top_pair",
    )

    def __init__(self, ts: float) -> None:
        self.first_ts = ts
        self.minute = int(ts // 60)
        self._counts = [0] * (_RING * _WIDTH)
        self._hour = [0] * _WIDTH  # running sums of the whole ring
        self._domains: dict[str, int] = {}  # domain -> last minute seen
        self._senders: dict[str, int] = {}
        self.known_senders: set[str] = set()
        self._pairs: dict[str, int] = {}
        self._pair_block = self.minute // 5
        self.top_pair = 0  # most messages of one sender->recipient pair in this 5-min block

    def _slot(self, ts: float) -> int:
        """The ring offset of `ts`'s minute, clearing the minutes skipped since the last event."""
        minute = int(ts // 60)
        if minute > self.minute:
            if minute - self.minute >= _RING:
                self._counts, self._hour = [0] * (_RING * _WIDTH), [0] * _WIDTH
            else:
                self._expire(minute)
            self.minute = minute
        return (self.minute % _RING) * _WIDTH

    def _expire(self, minute: int) -> None:
        """Clear the slots of the minutes after the newest one up to `minute` (< an hour on)."""
        counts = self._counts
        for m in range(self.minute + 1, minute + 1):
            base = (m % _RING) * _WIDTH
            old = counts[base : base + _WIDTH]
            if any(old):
                self._hour = [h - o for h, o in zip(self._hour, old, strict=True)]
                counts[base : base + _WIDTH] = _ZEROS

    def accepted(self, ts: float, sender: str, rcpts: list[str]) -> None:
        base = self._slot(ts)
        counts, hour, n = self._counts, self._hour, len(rcpts)
        counts[base + MSG] += 1
        counts[base + RCPT] += n
        hour[MSG] += 1
        hour[RCPT] += n
        minute = self.minute
        if not sender:
            counts[base + NULL] += 1
            hour[NULL] += 1
        elif sender not in self.known_senders:
            if ts - self.first_ts >= SENDER_WARMUP_S:
                counts[base + NEW_SENDER] += 1
                hour[NEW_SENDER] += 1
            if len(self.known_senders) < _MAX_SENDERS:
                self.known_senders.add(sender)
        self._senders[sender] = minute
        self._count_rcpts(sender, rcpts, minute)

    def _count_rcpts(self, sender: str, rcpts: list[str], minute: int) -> None:
        if minute // 5 != self._pair_block:
            self._pair_block, self.top_pair = minute // 5, 0
            self._pairs.clear()
            self._prune()
        pairs, domains, top = self._pairs, self._domains, self.top_pair
        for rcpt in rcpts:
            domains[rcpt[rcpt.rfind("@") + 1 :]] = minute
            key = sender + "\n" + rcpt
            n = pairs.get(key, 0) + 1
            pairs[key] = n
            if n > top:
                top = n
        self.top_pair = top

    def outcome(self, ts: float, kind: int, code: int) -> None:
        """One delivery attempt: kind 1 delivered, 2 deferred, 3 bounced (anomaly.trace)."""
        base = self._slot(ts)
        counts, hour = self._counts, self._hour
        counts[base + OUT] += 1
        hour[OUT] += 1
        if kind == 3:
            counts[base + BOUNCE] += 1
            hour[BOUNCE] += 1
            if code in INVALID_RCPT_CODES:
                counts[base + INVALID] += 1
                hour[INVALID] += 1
        elif kind == 2:
            counts[base + DEFER] += 1
            hour[DEFER] += 1

    def window(self, minutes: int) -> Window:
        """The counters of the last `minutes` minutes (1 to 60) up to the newest event."""
        if minutes >= _RING:
            return Window(_RING, *self._hour)
        counts = self._counts
        bases = [(m % _RING) * _WIDTH for m in range(self.minute - minutes + 1, self.minute + 1)]
        sums = [sum(col) for col in zip(*(counts[b : b + _WIDTH] for b in bases), strict=True)]
        return Window(minutes, *sums)

    def distinct(self, minutes: int) -> tuple[int, int]:
        """(recipient domains, envelope senders) seen in the last `minutes` minutes (≤ 60)."""
        since = self.minute - minutes + 1
        self._prune()
        domains = sum(1 for m in self._domains.values() if m >= since)
        senders = sum(1 for m in self._senders.values() if m >= since)
        return domains, senders

    def _prune(self) -> None:
        horizon = self.minute - _RING
        for table in (self._domains, self._senders):
            if len(table) > 256:
                for key in [k for k, m in table.items() if m < horizon]:
                    del table[key]
