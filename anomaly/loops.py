"""A mail loop's own signature: one sender→recipient pair whose messages keep growing.

A message caught in a loop (an auto-forward bouncing between two servers, an
auto-reply answering an auto-reply) comes back again and again, each time a
few hundred bytes larger: every hop adds its Received header. `GrowingPairs`
follows, for each sender→recipient pair of single-recipient messages, how
many messages in a row came each larger than the one before, each within
`GAP_S` of it (`chain`). Sizes that vary at random (a monitoring system's
alerts to one address) make such a run of k with chance 1/k!, so
`surprise(ts)` is log10(k!) of the longest run still going (its last message
within `GAP_S` of `ts`): a measured surprise like every other finding's, that
a backlog of queued alerts does not raise. Memory: at most `MAX_PAIRS`
pairs; past that the pairs silent for `GAP_S` are forgotten, and if that is
not enough, all of them. Nothing here raises.
"""

from __future__ import annotations

import math

GAP_S = 600.0  # a loop's messages come back within this
MAX_PAIRS = 4096  # pairs followed at once
_LN10 = math.log(10.0)


class GrowingPairs:
    __slots__ = ("_pairs", "longest", "longest_ts")

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, str], list[float]] = {}  # pair -> [size, ts, run]
        self.longest = 0  # the longest run seen lately...
        self.longest_ts = 0.0  # ...and when its last message came

    def note(self, ts: float, sender: str, rcpt: str, size: int) -> None:
        """One single-recipient message of `size` bytes."""
        pair = (sender, rcpt)
        last = self._pairs.get(pair)
        if last is None:
            if len(self._pairs) >= MAX_PAIRS:
                self._prune(ts)
            self._pairs[pair] = [float(size), ts, 1.0]
            return
        run = last[2] + 1.0 if size > last[0] and ts - last[1] <= GAP_S else 1.0
        last[0], last[1], last[2] = float(size), ts, run
        if run >= self.longest or ts - self.longest_ts > GAP_S:
            self.longest, self.longest_ts = int(run), ts

    def _prune(self, ts: float) -> None:
        fresh = {p: v for p, v in self._pairs.items() if ts - v[1] <= GAP_S}
        self._pairs = fresh if len(fresh) < MAX_PAIRS // 2 else {}

    def run(self, ts: float) -> int:
        """The longest run of growing messages whose last one came within GAP_S of `ts`."""
        return self.longest if ts - self.longest_ts <= GAP_S else 0

    def surprise(self, ts: float) -> float:
        """log10(k!) of that run: how unlikely sizes at random would line up so."""
        k = self.run(ts)
        return math.lgamma(k + 1) / _LN10 if k > 1 else 0.0
