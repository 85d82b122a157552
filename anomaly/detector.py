"""The detector: a connection's features against its baseline, into an explained verdict.

`Detector.accepted(...)` and `Detector.outcome(...)` take one event each (in
event time, never the wall clock) and return a `Verdict` when the connection
should be suspended, else None; a connection it suspended is not judged from
then on (`resume` forgets that), and not even counted unless the detector
keeps counting (`keep_counting`, as a live node's does). `traffic(c)` shows a
connection's features and baseline; `baselines()` and `restore(...)` carry the
learned baselines across a restart. Volume alone never suspends: a planned
newsletter, a reporting-day surge or a backlog after an outage are big but
clean. A suspension needs two kinds of evidence among: volume far above the
connection's usual for this time of week (baseline.py), recipients bouncing as
unknown, null-sender mail (backscatter), senders never seen before from this
connection (an open relay, a spammer rotating addresses), one sender→recipient
pair repeating (a mail loop); or one of them overwhelming. A backlog is not
abuse: after one of its servers was silent for `SILENCE_S` at hours the
connection usually sends (that server was down), that server's share of what
the connection usually sends in that time is expected within `CATCH_UP_S` of
its return; until it has come neither volume nor a repeated pair counts (the
queued alerts of a monitoring system repeat one pair), then its pairs are
counted afresh and its volume counts once it has left the 5-minute window; the
other findings always count. The reason is written for a person. Checks run at
most every `CHECK_S` seconds of trace time per connection, once enough new
traffic came in; a check first asks whether any evidence but volume could be
there at all (the last hour's counts against the smallest threshold of each
finding) and looks closer only then. Nothing here raises on well-formed
events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from anomaly.baseline import Baseline
from anomaly.features import Features, Window
from anomaly.trace import BOUNCED

CHECK_S = 10.0
CHECK_UNITS = 5  # recipients or bounces since the last check before checking again
VOLUME_FLOOR = 20  # recipients in 5 min below which volume is never abnormal
COLD_VOLUME = 60  # recipients in 5 min that count as high for a connection with no history
VOLUME_SIGMAS = 4.0
# (at least, ratio or share) in the 5- and the 60-minute window, for each finding
INVALID_TESTS = ((8, 0.2), (20, 0.12))  # bounced as unknown recipients
NULL_TESTS = ((8, 0.5), (20, 0.3))  # null-sender messages
NEW_SENDER_TESTS = ((6, 0.4), (15, 0.3))  # messages from senders never seen before
LOOP_PAIRS = 15  # messages of one sender->recipient pair in a 5-min block
OVERWHELMING_PAIRS = 30
SILENCE_S = 3600.0  # a server silent this long at busy hours was down: a backlog may follow
CATCH_UP_S = 1800.0  # how long a backlog may take to arrive
WINDOW_S = 300.0  # the window a backlog's volume and repeated pairs are counted in
BACKLOG_FLOOR = float(VOLUME_FLOOR)  # recipients a silence must miss to be an outage
MAX_SERVERS = 64  # server addresses told apart per connection (a trace may name any number)
NO_BACKLOG, ARRIVING, IN_WINDOW = range(3)
_LEAST_INVALID = min(least for least, _ in INVALID_TESTS)
_LEAST_NULL = min(least for least, _ in NULL_TESTS)
_LEAST_NEW = min(least for least, _ in NEW_SENDER_TESTS)


@dataclass(frozen=True, slots=True)
class Verdict:
    ts: float
    connection: str
    action: str  # "suspend"
    reason: str


class _Conn:
    __slots__ = (
        "baseline",
        "catch_up",
        "catch_up_until",
        "features",
        "last_check",
        "pending",
        "rcpts",
        "servers",
        "suspended",
    )

    def __init__(self, ts: float) -> None:
        self.features = Features(ts)
        self.baseline = Baseline(ts)
        self.last_check = ts - CHECK_S
        self.pending = 0
        self.suspended = False
        self.rcpts = 0  # recipients accepted since it was first seen
        self.servers: dict[str, list[float]] = {}  # ip -> [last accepted, recipients]
        self.catch_up = 0.0  # recipients of a backlog still expected after a silence
        self.catch_up_until = 0.0  # when the backlog stops counting (see `backlog`)

    def note_accepted(self, ts: float, ip: str, rcpts: int) -> None:
        """After one of its servers was silent at hours the connection usually sends, expect
        that server's backlog: its share of what the connection usually sends in that
        time, within CATCH_UP_S of its return (the other servers may have gone on). Once
        the whole backlog came, its pairs are forgotten (a loop must start afresh) and
        its volume stays in the 5-minute window for WINDOW_S more."""
        if ip not in self.servers and len(self.servers) >= MAX_SERVERS:
            ip = ""  # a connection's servers are few: past the bound they are counted as one
        server = self.servers.get(ip)
        if server is None:
            server = self.servers[ip] = [ts, 0.0]
        gap, share = ts - server[0], server[1] / self.rcpts if self.rcpts else 1.0
        server[0] = ts
        server[1] += rcpts
        self.rcpts += rcpts
        if gap >= SILENCE_S:
            missed = share * self.baseline.expected_between(ts - gap, ts)
            if missed >= BACKLOG_FLOOR:
                self.catch_up = (self.catch_up if self.backlog(ts) == ARRIVING else 0.0) + missed
                self.catch_up_until = ts + CATCH_UP_S
        if self.catch_up > 0 and ts < self.catch_up_until:
            self.catch_up -= rcpts
            if self.catch_up <= 0:  # the whole backlog came
                self.catch_up, self.catch_up_until = 0.0, ts + WINDOW_S
                self.features.forget_pairs()

    def backlog(self, ts: float) -> int:
        """NO_BACKLOG, ARRIVING (still expected after a silence) or IN_WINDOW (it came, and
        is still in the 5-minute window)."""
        if ts >= self.catch_up_until:
            return NO_BACKLOG
        return ARRIVING if self.catch_up > 0 else IN_WINDOW


class Evidence(NamedTuple):
    """What one check found; `signals` are the human-readable findings that count."""

    volume: str | None
    signals: tuple[str, ...]
    overwhelming: bool

    @property
    def suspend(self) -> bool:
        strong = len(self.signals) >= 2 or (self.volume is not None and bool(self.signals))
        return strong or self.overwhelming


class Detector:
    def __init__(self, keep_counting: bool = False) -> None:
        """`keep_counting`: a suspended connection's traffic is still counted (not judged),
        so its numbers stay true for whoever looks (the live node's incidents, ceilings)."""
        self._conns: dict[str, _Conn] = {}
        self._keep_counting = keep_counting
        self._saved: dict[str, Mapping[str, Any]] = {}

    def _open(self, connection: str, ts: float) -> _Conn:
        conn = self._conns[connection] = _Conn(ts)
        saved = self._saved.pop(connection, None)
        if saved is not None:
            conn.baseline = Baseline.restored(saved, ts)
        return conn

    def traffic(self, connection: str) -> tuple[Features, Baseline] | None:
        """The features and baseline of `connection`, None before its first event."""
        conn = self._conns.get(connection)
        return None if conn is None else (conn.features, conn.baseline)

    def baselines(self) -> dict[str, dict[str, Any]]:
        """What each connection's baseline learned (`Baseline.state`), to keep across restarts."""
        states: dict[str, dict[str, Any]] = {c: dict(s) for c, s in self._saved.items()}
        return states | {c: conn.baseline.state() for c, conn in self._conns.items()}

    def restore(self, states: Mapping[str, Mapping[str, Any]]) -> None:
        """Baselines learned before (`baselines()`), taken up at each connection's next event."""
        self._saved.update((c, s) for c, s in states.items() if c not in self._conns)

    def accepted(
        self, ts: float, connection: str, sender: str, rcpts: list[str], ip: str = ""
    ) -> Verdict | None:
        """One message taken from the connection's server `ip` ("" when unknown)."""
        conn = self._conns.get(connection) or self._open(connection, ts)
        if conn.suspended and not self._keep_counting:
            return None
        conn.features.accepted(ts, sender, rcpts)
        n = len(rcpts)
        conn.note_accepted(ts, ip, n)
        if conn.suspended:  # counted, but abnormal traffic is not learned as normal
            conn.baseline.skip(ts)
            return None
        conn.baseline.add(ts, n)
        conn.pending += n
        if conn.pending < CHECK_UNITS or ts - conn.last_check < CHECK_S:
            return None
        return self._check(conn, connection, ts)

    def outcome(self, ts: float, connection: str, kind: int, code: int) -> Verdict | None:
        conn = self._conns.get(connection) or self._open(connection, ts)
        if conn.suspended and not self._keep_counting:
            return None
        conn.features.outcome(ts, kind, code)
        if kind != BOUNCED or conn.suspended:
            return None
        conn.pending += 1
        if conn.pending < CHECK_UNITS or ts - conn.last_check < CHECK_S:
            return None
        return self._check(conn, connection, ts)

    def resume(self, connection: str) -> None:
        """Forget a suspension (an operator resumed the connection)."""
        if (conn := self._conns.get(connection)) is not None:
            conn.suspended = False

    def _check(self, conn: _Conn, connection: str, ts: float) -> Verdict | None:
        """Examine a connection whose check is due; the verdict if it is to be suspended."""
        conn.pending, conn.last_check = 0, ts
        if not could_signal(conn.features):
            return None
        evidence = examine(conn.features, conn.baseline, ts, conn.backlog(ts))
        if not evidence.suspend:
            return None
        conn.suspended = True
        parts = ([evidence.volume] if evidence.volume else []) + list(evidence.signals)
        return Verdict(ts, connection, "suspend", "; ".join(parts))


def could_signal(features: Features) -> bool:
    """Whether any finding but volume could be made: a check without one never suspends.
    Each count of a shorter window is at most the last hour's."""
    hour = features.window(60)
    return (
        hour.invalid >= _LEAST_INVALID
        or hour.null >= _LEAST_NULL
        or hour.new_senders >= _LEAST_NEW
        or features.top_pair_reaches(LOOP_PAIRS)
    )


def examine(
    features: Features, baseline: Baseline, ts: float, backlog: int = NO_BACKLOG
) -> Evidence:
    """The evidence against one connection at `ts`. Volume is looked at only beside another
    finding: alone it never suspends (and an overwhelming finding is a finding too). While
    a backlog is ARRIVING after a silence, neither its volume nor a repeated pair (the
    queued alerts of a monitoring system) is evidence; while it is IN_WINDOW, its volume
    is not. The other findings always are."""
    w5, w60 = features.window(5), features.window(60)
    loop = None if backlog == ARRIVING else _loop(features)
    found = (_invalid(w5, w60), _null(w5, w60), _new_senders(w5, w60), loop)
    signals = tuple(s for s in found if s)
    if not signals:
        return Evidence(None, (), False)
    volume = None if backlog != NO_BACKLOG else _volume(w5, baseline, ts, features)
    overwhelming = (w5.invalid >= 30 and w5.invalid_ratio >= 0.35) or (
        backlog != ARRIVING and features.top_pair_reaches(OVERWHELMING_PAIRS)
    )
    return Evidence(volume, signals, overwhelming)


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
    for w, (least, ratio) in zip((w5, w60), INVALID_TESTS, strict=True):
        if w.invalid >= least and w.invalid_ratio >= ratio:
            return (
                f"{_pct(w.invalid_ratio)} of {w.outcomes} deliveries in {w.minutes} min"
                " bounced as unknown recipients"
            )
    return None


def _null(w5: Window, w60: Window) -> str | None:
    for w, (least, share) in zip((w5, w60), NULL_TESTS, strict=True):
        if w.null >= least and w.null_share >= share:
            return (
                f"{w.null} of {w.msgs} messages in {w.minutes} min from the null sender (bounces)"
            )
    return None


def _new_senders(w5: Window, w60: Window) -> str | None:
    for w, (least, share) in zip((w5, w60), NEW_SENDER_TESTS, strict=True):
        if w.new_senders >= least and w.new_sender_share >= share:
            return (
                f"{w.new_senders} of {w.msgs} messages in {w.minutes} min"
                " from senders never seen before"
            )
    return None


def _loop(features: Features) -> str | None:
    if features.top_pair_reaches(LOOP_PAIRS):
        return (
            f"one sender sent the same recipient {features.top_pair} times in 5 min (a mail loop?)"
        )
    return None
