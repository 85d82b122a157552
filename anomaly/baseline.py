"""What is normal for one connection: online EWMA of its 5-minute traffic by time of week.

`Baseline` learns, per connection, the recipients it sends per 5-minute block,
as an exponentially weighted mean and variance in three slots at once: its
hour of the week (so a weekly newsletter at the same hour becomes normal), its
hour of a working day or of a day off (public holidays and transferred days
off count as days off, by ugem.core.workdays in Asia/Almaty), and overall. Blocks
are closed in event time; silent blocks count as zeros (at most a day of them
at once). A closed block is only noted; the slots learn the noted blocks, in
order, when asked (`expected`) or when many are waiting, so a connection
nobody asks about costs a note per block. `expected(ts)` returns (mean,
spread, warm): the most generous warm slot, so a learned burst never looks
abnormal; with too little history it returns a cautious default and
warm=False, and the detector then wants other evidence than volume.
`state()` and `Baseline.restored(state, ts)` carry what was learned across a
restart (the node keeps it in its store). Pure computation; nothing raises
but `restored` on a state it did not make.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from typing import Any

from ugem.core.workdays import ALMATY, WorkCalendar

BLOCK_S = 300.0
ALPHA = 0.15  # weight of the newest observation in a slot
WARM_SLOT = 3  # observations before a time-of-week slot is trusted
WARM_ALL = 72  # blocks (6 hours) before the overall slot is trusted
_MAX_FILL = 288  # silent blocks counted at once (a day)
_PER_HOUR = int(3600 // BLOCK_S)  # blocks in an hour
_MAX_CLOSED = 4096  # closed blocks kept before they are learned unasked
_KEEP = 1 - ALPHA
_CALENDAR = WorkCalendar()


@functools.lru_cache(maxsize=4096)
def _hour_keys(hour_index: int) -> tuple[int, int]:
    """(hour-of-week key, day-type key) of the Unix hour `hour_index`, in Asia/Almaty."""
    local = dt.datetime.fromtimestamp(hour_index * 3600, ALMATY)
    working = _CALENDAR.is_working_day(local.date())
    weekday = local.weekday() if working or local.weekday() >= 5 else 6  # a holiday is a Sunday
    return weekday * 24 + local.hour, 1000 + (24 if working else 0) + local.hour


class Stat:
    """Exponentially weighted mean and variance of one series."""

    __slots__ = ("mean", "n", "var")

    def __init__(self) -> None:
        self.mean, self.var, self.n = 0.0, 0.0, 0

    def add(self, x: float, times: int = 1) -> None:
        """Observe `x`, `times` times over."""
        mean, var, n = self.mean, self.var, self.n
        for _ in range(times):
            if n == 0:
                mean = x
            else:
                diff = x - mean
                mean += ALPHA * diff
                var = _KEEP * (var + ALPHA * diff * diff)
            n += 1
        self.mean, self.var, self.n = mean, var, n


def _stat(values: Sequence[float]) -> Stat:
    mean, var, n = values
    stat = Stat()
    stat.mean, stat.var, stat.n = float(mean), float(var), int(n)
    return stat


class Baseline:
    __slots__ = ("_block", "_block_end", "_closed", "_current", "_overall", "_slots")

    def __init__(self, ts: float) -> None:
        self._block = int(ts // BLOCK_S)
        self._block_end = (self._block + 1) * BLOCK_S
        self._current = 0
        self._closed: list[tuple[int, int, int]] = []  # (first block, value, blocks) to learn
        self._slots: dict[int, Stat] = {}
        self._overall = Stat()

    def add(self, ts: float, rcpts: int) -> None:
        """Count `rcpts` recipients accepted at `ts`."""
        if ts >= self._block_end:
            self.advance(ts)
        self._current += rcpts

    def advance(self, ts: float) -> None:
        """Close every 5-minute block before the one of `ts`."""
        block = int(ts // BLOCK_S)
        if block <= self._block:
            return
        closed = self._closed
        closed.append((self._block, self._current, 1))
        silent = max(self._block + 1, block - _MAX_FILL)
        if silent < block:
            closed.append((silent, 0, block - silent))
        if len(closed) >= _MAX_CLOSED:
            self._learn()
        self._block, self._current = block, 0
        self._block_end = (block + 1) * BLOCK_S

    def skip(self, ts: float) -> None:
        """Leave out what was counted since the last closed block and go on from the block
        of `ts` with nothing learned in between (traffic that must not become normal)."""
        block = int(ts // BLOCK_S)
        if block < self._block:
            return
        self._block, self._current = block, 0
        self._block_end = (block + 1) * BLOCK_S

    def _learn(self) -> None:
        """Fold the closed blocks into the slots, in order, an hour's worth at a time."""
        slots, overall = self._slots, self._overall
        for first, value, blocks in self._closed:
            block, end = first, first + blocks
            while block < end:
                upto = min(end, (block // _PER_HOUR + 1) * _PER_HOUR)
                for key in _hour_keys(block // _PER_HOUR):
                    stat = slots.get(key)
                    if stat is None:
                        stat = slots[key] = Stat()
                    stat.add(value, upto - block)
                overall.add(value, upto - block)
                block = upto
        self._closed.clear()

    @property
    def overall(self) -> Stat:
        """The slot of every hour."""
        self._learn()
        return self._overall

    def state(self) -> dict[str, Any]:
        """What it learned, as JSON-ready data (the block in progress is left out)."""
        self._learn()
        slots = {str(key): [st.mean, st.var, st.n] for key, st in self._slots.items()}
        overall = self._overall
        return {"slots": slots, "overall": [overall.mean, overall.var, overall.n]}

    @classmethod
    def restored(cls, state: Mapping[str, Any], ts: float) -> Baseline:
        """A baseline that knows what `state` says and counts on from the block of `ts`.

        The time between the state and `ts` was not observed (the node was down),
        so it is not learned as silence. Raises ValueError on a state that
        `state()` did not make.
        """
        baseline = cls(ts)  # starts at the block of `ts`: nothing learned in between
        try:
            for key, values in state["slots"].items():
                baseline._slots[int(key)] = _stat(values)
            baseline._overall = _stat(state["overall"])
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a baseline's state: {exc!r}") from exc
        return baseline

    def expected_between(self, start: float, end: float) -> float:
        """Recipients usually sent from `start` to `end` (at most a day of it), 0 when cold.

        The sum, hour by hour, of the usual per 5-minute block times the blocks of that
        hour in the span: what a server that was down then may have queued.
        """
        end = min(end, start + 86_400.0)
        total, ts = 0.0, start
        while ts < end:
            upto = min(end, (ts // 3600 + 1) * 3600)
            mean, _, warm = self.expected(ts)
            if warm:
                total += mean * (upto - ts) / BLOCK_S
            ts = upto
        return total

    def expected(self, ts: float) -> tuple[float, float, bool]:
        """(usual recipients per 5 min, spread, warm) at the time of `ts`."""
        self._learn()
        candidates = [
            s
            for key in _hour_keys(int(ts // 3600))
            if (s := self._slots.get(key)) is not None and s.n >= WARM_SLOT
        ]
        if self._overall.n >= WARM_ALL:
            candidates.append(self._overall)
        if not candidates:
            return 0.0, 0.0, False
        best = max(candidates, key=lambda s: s.mean + 2 * s.var**0.5)
        return best.mean, best.var**0.5, True
