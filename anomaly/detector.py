"""The detector: a connection's features against its baseline, into an explained verdict.

`Detector.accepted(...)` and `Detector.outcome(...)` take one event each (in
event time, never the wall clock) and return a `Verdict` when the connection
should be suspended, else None; a connection it suspended is ignored from
then on (`resume` forgets that). Volume alone never suspends: a planned
newsletter, a reporting-day surge or a backlog after an outage are big but
clean. A suspension needs two kinds of evidence among: volume far above the
connection's usual for this time of week (baseline.py), recipients bouncing
as unknown, null-sender mail (backscatter), senders never seen before from
this connection (an open relay, a spammer rotating addresses), one
sender→recipient pair repeating (a mail loop); or one of them overwhelming.
The reason is written for a person. Checks run at most every `CHECK_S`
seconds of trace time per connection, once enough new traffic came in.
Nothing here raises on well-formed events.
"""

from __future__ import annotations

from dataclasses import dataclass

from anomaly.baseline import Baseline
from anomaly.features import Features, Window

CHECK_S = 10.0
CHECK_UNITS = 5  # recipients or bounces since the last check before checking again
VOLUME_FLOOR = 20  # recipients in 5 min below which volume is never abnormal
COLD_VOLUME = 60  # recipients in 5 min that count as high for a connection with no history
VOLUME_SIGMAS = 4.0


@dataclass(frozen=True, slots=True)
class Verdict:
    ts: float
    connection: str
    action: str  # "suspend"
    reason: str


class _Conn:
    __slots__ = ("baseline", "features", "last_check", "pending", "suspended")

    def __init__(self, ts: float) -> None:
        self.features = Features(ts)
        self.baseline = Baseline(ts)
        self.last_check = ts - CHECK_S
        self.pending = 0
        self.suspended = False


@dataclass(frozen=True, slots=True)
class Evidence:
    """What one check found; `signals` are the human-readable findings that count."""

    volume: str | None
    signals: tuple[str, ...]
    overwhelming: bool

    @property
    def suspend(self) -> bool:
        strong = len(self.signals) >= 2 or (self.volume is not None and bool(self.signals))
        return strong or self.overwhelming


class Detector:
    def __init__(self) -> None:
        self._conns: dict[str, _Conn] = {}

    def _conn(self, connection: str, ts: float) -> _Conn:
        conn = self._conns.get(connection)
        if conn is None:
            conn = self._conns[connection] = _Conn(ts)
        return conn

    def accepted(self, ts: float, connection: str, sender: str, rcpts: list[str]) -> Verdict | None:
        conn = self._conn(connection, ts)
        if conn.suspended:
            return None
        conn.features.accepted(ts, sender, rcpts)
        conn.baseline.add(ts, len(rcpts))
        conn.pending += len(rcpts)
        return self._maybe_check(conn, connection, ts)

    def outcome(self, ts: float, connection: str, kind: int, code: int) -> Verdict | None:
        conn = self._conn(connection, ts)
        if conn.suspended:
            return None
        conn.features.outcome(ts, kind, code)
        if kind == 3:
            conn.pending += 1
            return self._maybe_check(conn, connection, ts)
        return None

    def resume(self, connection: str) -> None:
        """Forget a suspension (an operator resumed the connection)."""
        if (conn := self._conns.get(connection)) is not None:
            conn.suspended = False

    def _maybe_check(self, conn: _Conn, connection: str, ts: float) -> Verdict | None:
        if conn.pending < CHECK_UNITS or ts - conn.last_check < CHECK_S:
            return None
        conn.pending, conn.last_check = 0, ts
        evidence = examine(conn.features, conn.baseline, ts)
        if not evidence.suspend:
            return None
        conn.suspended = True
        parts = ([evidence.volume] if evidence.volume else []) + list(evidence.signals)
        return Verdict(ts, connection, "suspend", "; ".join(parts))


def examine(features: Features, baseline: Baseline, ts: float) -> Evidence:
    """The evidence against one connection at `ts`."""
    w5, w60 = features.window(5), features.window(60)
    volume = _volume(w5, baseline, ts, features)
    signals = [
        s for s in (_invalid(w5, w60), _null(w5, w60), _new_senders(w5, w60), _loop(features)) if s
    ]
    overwhelming = (w5.invalid >= 30 and w5.invalid_ratio >= 0.35) or features.top_pair >= 30
    return Evidence(volume, tuple(signals), overwhelming)


def _volume(w5: Window, baseline: Baseline, ts: float, features: Features) -> str | None:
    if w5.rcpts < VOLUME_FLOOR:
        return None
    mean, spread, warm = baseline.expected(ts)
    if not warm:
        if w5.rcpts < COLD_VOLUME:
            return None
        return f"{_where(w5, features)} from a connection with little history"
    # The spread has a floor: a connection that never varied must not alarm on a few more.
    limit = mean + VOLUME_SIGMAS * max(spread, 3.0, 0.25 * mean)
    if w5.rcpts <= limit:
        return None
    return f"{_where(w5, features)} against a usual {mean:.0f} ± {spread:.0f} at this hour"


def _where(w5: Window, features: Features) -> str:
    domains, _ = features.distinct(5)  # counted only for a finding: it walks the messages
    return f"{w5.rcpts} recipients in 5 min ({w5.msgs} messages, {domains} recipient domains)"


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _invalid(w5: Window, w60: Window) -> str | None:
    for w, least, ratio in ((w5, 8, 0.2), (w60, 20, 0.12)):
        if w.invalid >= least and w.invalid_ratio >= ratio:
            return (
                f"{_pct(w.invalid_ratio)} of {w.outcomes} deliveries in {w.minutes} min"
                " bounced as unknown recipients"
            )
    return None


def _null(w5: Window, w60: Window) -> str | None:
    for w, least, share in ((w5, 8, 0.5), (w60, 20, 0.3)):
        if w.null >= least and w.null_share >= share:
            return (
                f"{w.null} of {w.msgs} messages in {w.minutes} min from the null sender (bounces)"
            )
    return None


def _new_senders(w5: Window, w60: Window) -> str | None:
    for w, least, share in ((w5, 6, 0.4), (w60, 15, 0.3)):
        if w.new_senders >= least and w.new_sender_share >= share:
            return (
                f"{w.new_senders} of {w.msgs} messages in {w.minutes} min"
                " from senders never seen before"
            )
    return None


def _loop(features: Features) -> str | None:
    if features.top_pair >= 15:
        return (
            f"one sender sent the same recipient {features.top_pair} times in 5 min (a mail loop?)"
        )
    return None
