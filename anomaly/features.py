"""Per-connection traffic features over sliding windows, driven by event time.

`Features` keeps, for one connection, per-minute counters in a 60-minute ring
(messages, recipients, null-sender messages, messages from senders new to the
connection, delivery outcomes, bounces, invalid-recipient bounces, deferrals),
so a window of the last 1, 5 or 60 minutes is a sum over its slots. It also
keeps the last hour's messages (sender, recipients) as given, so the distinct
recipient domains and senders are counted only when asked, and the busiest
sender→recipient pair of the current 5-minute block (a mail loop repeats one
pair), brought up to date only when read: per-recipient work is paid for only
by a connection the detector looks at. Time only moves forward: an event older than
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
_Msg = tuple[str, list[str]]


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
        "_block",
        "_block_done",
        "_counts",
        "_hour",
        "_msgs",
        "_pair_block",
        "_pairs",
        "_top_pair",
        "first_ts",
        "known_senders",
        "minute",
    )

    def __init__(self, ts: float) -> None:
        self.first_ts = ts
        self.minute = int(ts // 60)
        self._counts = [0] * (_RING * _WIDTH)
        self._hour = [0] * _WIDTH  # running sums of the whole ring
        self._msgs: list[list[_Msg]] = [[] for _ in range(_RING)]  # (sender, rcpts) per minute
        self.known_senders: set[str] = set()
        self._pair_block = self.minute // 5
        self._block: list[_Msg] = []  # messages of this 5-min block, counted into pairs lazily
        self._block_done = 0
        self._pairs: dict[tuple[str, str], int] = {}
        self._top_pair = 0

    def _slot(self, ts: float) -> int:
        """The ring offset of `ts`'s minute, clearing the minutes skipped since the last event."""
        minute = int(ts // 60)
        if minute > self.minute:
            if minute - self.minute >= _RING:
                self._counts, self._hour = [0] * (_RING * _WIDTH), [0] * _WIDTH
                self._msgs = [[] for _ in range(_RING)]
            else:
                self._expire(minute)
            self.minute = minute
        return (self.minute % _RING) * _WIDTH

    def _expire(self, minute: int) -> None:
        """Clear the slots of the minutes after the newest one up to `minute` (< an hour on)."""
        counts = self._counts
        for m in range(self.minute + 1, minute + 1):
            base = (m % _RING) * _WIDTH
            if counts[base + MSG] or counts[base + OUT]:  # every event counts in one of them
                old = counts[base : base + _WIDTH]
                self._hour = [h - o for h, o in zip(self._hour, old, strict=True)]
                counts[base : base + _WIDTH] = _ZEROS
                self._msgs[m % _RING] = []

    def accepted(self, ts: float, sender: str, rcpts: list[str]) -> None:
        base = self._slot(ts)
        counts, hour, n = self._counts, self._hour, len(rcpts)
        counts[base + MSG] += 1
        counts[base + RCPT] += n
        hour[MSG] += 1
        hour[RCPT] += n
        if not sender:
            counts[base + NULL] += 1
            hour[NULL] += 1
        elif sender not in self.known_senders:
            if ts - self.first_ts >= SENDER_WARMUP_S:
                counts[base + NEW_SENDER] += 1
                hour[NEW_SENDER] += 1
            if len(self.known_senders) < _MAX_SENDERS:
                self.known_senders.add(sender)
        msg = (sender, rcpts)
        self._msgs[self.minute % _RING].append(msg)
        block = self.minute // 5
        if block != self._pair_block:
            self._pair_block, self._top_pair, self._block_done = block, 0, 0
            self._block, self._pairs = [], {}
        self._block.append(msg)

    @property
    def top_pair(self) -> int:
        """Most messages of one sender->recipient pair in the 5-min block of the last message."""
        block = self._block
        if self._block_done < len(block):
            pairs, top = self._pairs, self._top_pair
            for sender, rcpts in block[self._block_done :]:
                for rcpt in rcpts:
                    key = (sender, rcpt)
                    n = pairs.get(key, 0) + 1
                    pairs[key] = n
                    if n > top:
                        top = n
            self._top_pair, self._block_done = top, len(block)
        return self._top_pair

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
        counts, minute = self._counts, self.minute
        bases = [(m % _RING) * _WIDTH for m in range(minute - minutes + 1, minute + 1)]
        slots = [counts[b : b + _WIDTH] for b in bases]
        return Window(minutes, *map(sum, zip(*slots, strict=True)))

    def distinct(self, minutes: int) -> tuple[int, int]:
        """(recipient domains, envelope senders) seen in the last `minutes` minutes (≤ 60)."""
        domains: set[str] = set()
        senders: set[str] = set()
        msgs = self._msgs
        for m in range(self.minute - min(minutes, _RING) + 1, self.minute + 1):
            for sender, rcpts in msgs[m % _RING]:
                senders.add(sender)
                domains.update([r[r.rfind("@") + 1 :] for r in rcpts])
        return len(domains), len(senders)
