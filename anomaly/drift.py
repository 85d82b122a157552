"""A slow rise in a connection's traffic: a CUSUM of its 5-minute blocks against its usual.

`Drift.note(ts, rcpts, baseline)` counts the recipients of each closed
5-minute block against what the connection's baseline (anomaly.baseline)
expects at that time: z = (count - usual) / spread, and the cumulative sum
S = max(0, S + z - SLACK) grows while the traffic stays above its usual band
and drains when it comes back (a silent block drains it by its usual plus
SLACK). One block adds at most Z_MAX spreads: a single burst is the volume
finding's to judge, a drift is a rise that lasts. A ramp that leaves the
band a little at a time adds up here long before any one block looks
abnormal. `decades()` turns S into a surprise:
for a Gaussian walk with drift -SLACK the chance of S reaching s is about
exp(-2 x SLACK x s), so s is worth 2 x SLACK x s / ln 10 decades. A cold
baseline adds nothing (there is no usual to drift from). The spread has the
floors of the volume finding (anomaly.score), so a connection that never
varied is not taken for a drifting one. O(1) per event, one baseline lookup
per closed block, none for a quiet block while the sum is empty (it cannot
start one); nothing raises.
"""

from __future__ import annotations

import math

from anomaly.baseline import BLOCK_S, Baseline

SLACK = 0.5  # spreads above the usual a block may be without adding to the sum
Z_MAX = 3.0  # spreads one block may add at most
SPREAD_FLOOR, SPREAD_SHARE = 3.0, 0.25  # the spread is at least this, and this share of the mean
_MAX_DRAIN = 288  # silent blocks drained at once (a day): enough to empty any sum
_DECADES = 2.0 * SLACK / math.log(10.0)
# A block of at most this many recipients cannot start a sum: z <= count / SPREAD_FLOOR <= SLACK
_QUIET = SLACK * SPREAD_FLOOR


class Drift:
    __slots__ = ("_block", "_count", "blocks", "total")

    def __init__(self, ts: float) -> None:
        self._block = int(ts // BLOCK_S)
        self._count = 0
        self.total = 0.0  # S, in spreads
        self.blocks = 0  # closed blocks since the sum was last empty

    def note(self, ts: float, rcpts: int, baseline: Baseline) -> None:
        """Count `rcpts` recipients accepted at `ts`, closing the blocks before it."""
        block = int(ts // BLOCK_S)
        if block > self._block:
            self._close(block, baseline)
        self._count += rcpts

    def _close(self, block: int, baseline: Baseline) -> None:
        self._step(self._count, self._block * BLOCK_S, baseline)
        silent = min(block - self._block - 1, _MAX_DRAIN)
        for i in range(silent):
            if self.total <= 0.0:
                break
            self._step(0, (block - silent + i) * BLOCK_S, baseline)
        self._block, self._count = block, 0

    def _step(self, count: int, ts: float, baseline: Baseline) -> None:
        if self.total <= 0.0 and count <= _QUIET:  # stays empty whatever the usual: no lookup
            self.blocks = 0
            return
        mean, spread, warm = baseline.expected(ts)
        if not warm:
            self.total, self.blocks = 0.0, 0
            return
        spread = max(spread, SPREAD_FLOOR, SPREAD_SHARE * mean)
        z = min(Z_MAX, (count - mean) / spread)
        self.total = max(0.0, self.total + z - SLACK)
        self.blocks = self.blocks + 1 if self.total > 0.0 else 0

    def clear(self) -> None:
        """Forget the sum (a backlog after an outage is no drift)."""
        self.total, self.blocks = 0.0, 0

    def decades(self) -> float:
        """How surprising the sum is now, in decades (0 when it is empty)."""
        return _DECADES * self.total
