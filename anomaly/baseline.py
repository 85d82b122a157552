"""What is normal for one connection: online EWMA of its 5-minute traffic by time of week.

`Baseline` learns, per connection, the recipients it sends per 5-minute block,
as an exponentially weighted mean and variance in three slots at once: its
hour of the week (so a weekly newsletter at the same hour becomes normal), its
hour of a working day or of a day off (public holidays and transferred days
off count as days off, by ugem.workdays in Asia/Almaty), and overall. Blocks
are closed in event time; silent blocks count as zeros (at most a day of them
at once). `expected(ts)` returns (mean, spread, warm): the most generous warm
slot, so a learned burst never looks abnormal; with too little history it
returns a cautious default and warm=False, and the detector then wants other
evidence than volume. Pure computation; nothing raises.
"""

from __future__ import annotations

import datetime as dt
import functools

from ugem.workdays import ALMATY, WorkCalendar

BLOCK_S = 300.0
ALPHA = 0.15  # weight of the newest observation in a slot
WARM_SLOT = 3  # observations before a time-of-week slot is trusted
WARM_ALL = 72  # blocks (6 hours) before the overall slot is trusted
_MAX_FILL = 288  # silent blocks counted at once (a day)
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

    def add(self, x: float) -> None:
        if self.n == 0:
            self.mean = x
        else:
            diff = x - self.mean
            self.mean += ALPHA * diff
            self.var = (1 - ALPHA) * (self.var + ALPHA * diff * diff)
        self.n += 1


class Baseline:
    __slots__ = ("_block", "_current", "_slots", "overall")

    def __init__(self, ts: float) -> None:
        self._block = int(ts // BLOCK_S)
        self._current = 0
        self._slots: dict[int, Stat] = {}
        self.overall = Stat()

    def add(self, ts: float, rcpts: int) -> None:
        """Count `rcpts` recipients accepted at `ts`."""
        self.advance(ts)
        self._current += rcpts

    def advance(self, ts: float) -> None:
        """Close every 5-minute block before the one of `ts`."""
        block = int(ts // BLOCK_S)
        if block <= self._block:
            return
        self._learn(self._block, self._current)
        for b in range(max(self._block + 1, block - _MAX_FILL), block):
            self._learn(b, 0)
        self._block, self._current = block, 0

    def _learn(self, block: int, value: int) -> None:
        for key in _hour_keys(int(block * BLOCK_S // 3600)):
            stat = self._slots.get(key)
            if stat is None:
                stat = self._slots[key] = Stat()
            stat.add(value)
        self.overall.add(value)

    def expected(self, ts: float) -> tuple[float, float, bool]:
        """(usual recipients per 5 min, spread, warm) at the time of `ts`."""
        candidates = [
            s
            for key in _hour_keys(int(ts // 3600))
            if (s := self._slots.get(key)) is not None and s.n >= WARM_SLOT
        ]
        if self.overall.n >= WARM_ALL:
            candidates.append(self.overall)
        if not candidates:
            return 0.0, 0.0, False
        best = max(candidates, key=lambda s: s.mean + 2 * s.var**0.5)
        return best.mean, best.var**0.5, True
