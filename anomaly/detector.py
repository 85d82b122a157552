"""The detector: a connection's traffic against its own usual, into an explained verdict.

`Detector.accepted(...)` and `Detector.outcome(...)` take one event each (in
event time, never the wall clock) and return a `Verdict` or None. Every
check (at most every `CHECK_S` seconds of trace time per connection, once
enough new traffic came in, or at once after `CHECK_BURST` recipients and
bounces) scores the connection (anomaly.score: each
finding a surprise in decades against the connection's own usual, summed)
and acts on the score through `Thresholds`:

- THROTTLE at `throttle`: the connection's rate is to be held near its usual
  (the live node answers the excess 451 4.7.1; a replay prints it). It holds
  while checks keep scoring at `throttle`, and a LIFT verdict comes at the
  first event `LIFT_S` after the last such check.
- SUSPEND at `suspend`, when `corroborated` of the score is neither volume
  nor new recipients: volume alone is a newsletter or a deadline surge, and
  a bulk mailing to citizens never mailed is both; abuse shows more (bounces
  from unknown users, refusals, null senders, new senders, senders at domains
  never used writing to strangers, a loop).

A connection it suspended is not judged from then on (`resume` forgets that),
and not even counted unless the detector keeps counting (`keep_counting`, as
a live node's does). `traffic(c)` shows a connection's features and baseline;
`baselines()` and `restore(...)` carry the learned baselines across a
restart; `throttled(c)` says whether a connection is throttled now. A backlog
is not abuse: after one of its servers was silent for `SILENCE_S` at hours
the connection usually sends (that server was down), that server's share of
what the connection usually sends in that time is expected within
`CATCH_UP_S` of its return (longer than expected, while that server's
messages still come less than `FLUSH_GAP_S` apart, as a flushing queue sends
them, up to `CATCH_UP_S`: the estimate is the usual of those hours, and a
queue of a day off's alerts can be much more); until it has come neither
volume nor a repeated pair counts (the queued alerts of a monitoring system
repeat one pair), then its pairs are counted afresh and its volume counts
once it has left the 5-minute window. A check first asks whether any finding but volume could
weigh at all (`score.could_weigh`) and looks closer only then. An `observer`
sees every assessment (the calibration records them). Nothing here raises on
well-formed events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from anomaly.baseline import Baseline
from anomaly.drift import Drift
from anomaly.features import Features
from anomaly.score import (
    ARRIVING,
    IN_WINDOW,
    NO_BACKLOG,
    VOLUME_FLOOR,
    Assessment,
    assess,
    could_weigh,
)
from anomaly.trace_reader import BOUNCED
from ugem.core.throttle import cap as throttle_cap

CHECK_S = 10.0
CHECK_UNITS = 5  # recipients or bounces since the last check before checking again...
CHECK_BURST = 100  # ...after CHECK_S, or at once when this many came (a blast of 100 a second)
# The thresholds anomaly.calibrate chose on the TUNING seeds (`ugem anomaly protocol`
# prints the choice and why; BENCHMARKS.md has it):
THROTTLE_AT = 7.0  # score (decades of surprise) from which a connection is throttled
SUSPEND_AT = 7.0  # score from which it is suspended...
CORROBORATED_AT = 3.0  # ...when this much of it is neither volume nor new recipients
LIFT_S = 900.0  # a throttle lifts after this long without a score at THROTTLE_AT
SILENCE_S = 3600.0  # a server silent this long at busy hours was down: a backlog may follow
CATCH_UP_S = 1800.0  # how long a backlog may take to arrive
WINDOW_S = 300.0  # the window a backlog's volume and repeated pairs are counted in
FLUSH_GAP_S = 5.0  # a server's messages this close together are still its queue flushing
LEAST_FLUSH = 3  # messages at that pace after a quiet hour's silence before they are a backlog
BACKLOG_FLOOR = float(VOLUME_FLOOR)  # recipients a silence must miss to be an outage
MAX_SERVERS = 64  # server addresses told apart per connection (a trace may name any number)
SUSPEND, THROTTLE, LIFT = "suspend", "throttle", "lift"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The scores that throttle and suspend (anomaly.protocol calibrates them)."""

    throttle: float = THROTTLE_AT
    suspend: float = SUSPEND_AT
    corroborated: float = CORROBORATED_AT

    def suspends(self, found: Assessment) -> bool:
        return found.score >= self.suspend and found.corroboration >= self.corroborated


DEFAULT_THRESHOLDS = Thresholds()


def _due(conn: _Conn, ts: float) -> bool:
    """Whether a connection's check is due: CHECK_UNITS since the last one and CHECK_S
    gone, or CHECK_BURST since it (a blast is judged as it comes, not 10 s later)."""
    pending = conn.pending
    if pending < CHECK_UNITS:
        return False
    return pending >= CHECK_BURST or ts - conn.last_check >= CHECK_S


Observer = Callable[[float, str, Assessment], None]


@dataclass(frozen=True, slots=True)
class Verdict:
    ts: float
    connection: str
    action: str  # SUSPEND, THROTTLE or LIFT
    reason: str
    score: float = 0.0
    cap: float = 0.0  # of a THROTTLE: recipients per 5 min it lets through (ugem.core.throttle)


class _Conn:
    __slots__ = (
        "baseline",
        "catch_up",
        "catch_up_until",
        "drift",
        "features",
        "flush_last",
        "flushed",
        "flushing",
        "last_check",
        "pending",
        "rcpts",
        "servers",
        "suspended",
        "throttled_until",
    )

    def __init__(self, ts: float, since: float) -> None:
        self.features = Features(ts, since)
        self.baseline = Baseline(ts)
        self.drift = Drift(ts)
        self.last_check = ts - CHECK_S
        self.pending = 0
        self.suspended = False
        self.throttled_until = 0.0  # 0: not throttled
        self.rcpts = 0  # recipients accepted since it was first seen
        self.servers: dict[str, list[float]] = {}  # ip -> [last accepted, recipients]
        self.catch_up = 0.0  # recipients of a backlog still expected after a silence
        self.catch_up_until = 0.0  # when the backlog stops counting (see `backlog`)
        self.flushing = ""  # the server whose backlog is expected
        self.flush_last = 0.0  # of a backlog that is only a flush: its last message's time
        self.flushed = 0  # and how many messages it has had

    def note_accepted(self, ts: float, ip: str, rcpts: int) -> None:
        """After one of its servers was silent for SILENCE_S, expect that server's backlog:
        its share of what the connection usually sends in that time, from that server
        (the others may have gone on as usual), within CATCH_UP_S of its return, or more
        while that server's messages still come as fast as a flushing queue sends them
        (FLUSH_GAP_S apart), up to CATCH_UP_S. At hours it usually sends little (under
        BACKLOG_FLOOR missed: a night), the backlog is only what comes at a flush's pace
        (queued alerts after a night's outage repeat one pair). Once the whole
        backlog came, its pairs are forgotten (a loop must start afresh) and its volume
        stays in the 5-minute window for WINDOW_S more."""
        if ip not in self.servers and len(self.servers) >= MAX_SERVERS:
            ip = ""  # a connection's servers are few: past the bound they are counted as one
        server = self.servers.get(ip)
        if server is None:
            server = self.servers[ip] = [ts, 0.0]
        gap = ts - server[0]
        if gap >= SILENCE_S:
            share = server[1] / self.rcpts if self.rcpts else 1.0
        server[0] = ts
        server[1] += rcpts
        self.rcpts += rcpts
        if gap >= SILENCE_S:
            missed = share * self.baseline.expected_between(ts - gap, ts)
            if missed < BACKLOG_FLOOR:  # a quiet hour's silence: only a flush is a backlog
                self._flush_only(ts, ip)
                return
            self.catch_up = (self.catch_up if self.backlog(ts) == ARRIVING else 0.0) + missed
            self.catch_up_until, self.flushing = ts + CATCH_UP_S, ip
        if self.catch_up > 0 and ts < self.catch_up_until and ip == self.flushing:
            if self.flush_last:  # a flush after a quiet hour's silence goes on, or ended
                if gap < FLUSH_GAP_S:
                    self.flush_last, self.flushed = ts, self.flushed + 1
                else:
                    self._flush_ended(ts)
                return
            self.catch_up -= rcpts
            if self.catch_up <= 0 and gap < FLUSH_GAP_S:
                # more than expected, still as fast as a queue flushes: the backlog goes on
                self.catch_up = float(rcpts)
            elif self.catch_up <= 0:  # the whole backlog came
                self._backlog_came(ts)

    def _flush_only(self, ts: float, ip: str) -> None:
        """After a silence at hours with little traffic: a backlog as long as `ip`'s
        messages come at a flush's pace (queued alerts after a night's outage)."""
        if self.backlog(ts) != ARRIVING:
            self.catch_up, self.catch_up_until, self.flushing = 1.0, ts + CATCH_UP_S, ip
            self.flush_last, self.flushed = ts, 1

    def _flush_ended(self, ts: float) -> None:
        """A backlog if at least LEAST_FLUSH messages came at a flush's pace; else the first
        message after a silence was only that (no backlog: nothing forgotten, volume counts)."""
        if self.flushed >= LEAST_FLUSH:
            self._backlog_came(ts)
        else:
            self.catch_up, self.catch_up_until, self.flush_last = 0.0, 0.0, 0.0

    def _backlog_came(self, ts: float) -> None:
        """The whole backlog came: its pairs are forgotten, its volume still in the window."""
        self.catch_up, self.catch_up_until, self.flush_last = 0.0, ts + WINDOW_S, 0.0
        self.features.forget_pairs()

    def backlog(self, ts: float) -> int:
        """NO_BACKLOG, ARRIVING (still expected after a silence) or IN_WINDOW (it came, and
        is still in the 5-minute window)."""
        if self.flush_last and ts - self.flush_last >= FLUSH_GAP_S:
            self._flush_ended(self.flush_last)  # the flush stopped
        if ts >= self.catch_up_until:
            return NO_BACKLOG
        return ARRIVING if self.catch_up > 0 else IN_WINDOW


class Detector:
    def __init__(
        self,
        keep_counting: bool = False,
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
        observer: Observer | None = None,
    ) -> None:
        """`keep_counting`: a suspended connection's traffic is still counted (not judged),
        so its numbers stay true for whoever looks (the live node's incidents, ceilings).
        `observer` is shown every assessment (the calibration records the scores)."""
        self._conns: dict[str, _Conn] = {}
        self._keep_counting = keep_counting
        self.thresholds = thresholds
        self._observer = observer
        self._saved: dict[str, Mapping[str, Any]] = {}
        self._since: float | None = None

    def _open(self, connection: str, ts: float) -> _Conn:
        if self._since is None:
            self._since = ts  # listening since its first event (anomaly.warmup)
        conn = self._conns[connection] = _Conn(ts, self._since)
        saved = self._saved.pop(connection, None)
        if saved is not None:
            conn.baseline = Baseline.restored(saved, ts)
        return conn

    def traffic(self, connection: str) -> tuple[Features, Baseline] | None:
        """The features and baseline of `connection`, None before its first event."""
        conn = self._conns.get(connection)
        return None if conn is None else (conn.features, conn.baseline)

    def cap(self, connection: str, ts: float) -> float:
        """A throttle's cap for `connection` at `ts` (ugem.core.throttle.cap): recipients per
        5 minutes, from what its baseline expects then (the floor before its first event)."""
        conn = self._conns.get(connection)
        if conn is None:
            return throttle_cap(0.0, False)
        usual, _, warm = conn.baseline.expected(ts)
        return throttle_cap(usual, warm)

    def baselines(self) -> dict[str, dict[str, Any]]:
        """What each connection's baseline learned (`Baseline.state`), to keep across restarts."""
        states: dict[str, dict[str, Any]] = {c: dict(s) for c, s in self._saved.items()}
        return states | {c: conn.baseline.state() for c, conn in self._conns.items()}

    def restore(self, states: Mapping[str, Mapping[str, Any]]) -> None:
        """Baselines learned before (`baselines()`), taken up at each connection's next event."""
        self._saved.update((c, s) for c, s in states.items() if c not in self._conns)

    def accepted(
        self,
        ts: float,
        connection: str,
        sender: str,
        rcpts: list[str],
        ip: str = "",
        size: int = 0,
    ) -> Verdict | None:
        """One message of `size` bytes taken from the connection's server `ip` ("" and 0
        when unknown)."""
        conn = self._conns.get(connection) or self._open(connection, ts)
        if conn.suspended and not self._keep_counting:
            return None
        conn.features.accepted(ts, sender, rcpts, size)
        n = len(rcpts)
        conn.note_accepted(ts, ip, n)
        if conn.suspended:  # counted, but abnormal traffic is not learned as normal
            conn.baseline.skip(ts)
            return None
        if conn.backlog(ts) == NO_BACKLOG:
            conn.drift.note(ts, n, conn.baseline)  # before the baseline learns this block
        else:
            conn.drift.clear()
        conn.baseline.add(ts, n)
        conn.pending += n
        if not _due(conn, ts):
            return self._lifted(conn, connection, ts) if conn.throttled_until else None
        return self._check(conn, connection, ts)

    def outcome(
        self, ts: float, connection: str, kind: int, code: int, rcpt: str = ""
    ) -> Verdict | None:
        """One delivery attempt's outcome for `rcpt` ("" when unknown) of a message the
        connection sent."""
        conn = self._conns.get(connection) or self._open(connection, ts)
        if conn.suspended and not self._keep_counting:
            return None
        conn.features.outcome(ts, kind, code, rcpt)
        if kind != BOUNCED or conn.suspended:
            return None
        conn.pending += 1
        if not _due(conn, ts):
            return self._lifted(conn, connection, ts) if conn.throttled_until else None
        return self._check(conn, connection, ts)

    def complained(self, ts: float, connection: str) -> Verdict | None:
        """One feedback-loop complaint about `connection`'s mail (a live node's), judged at
        once unless a check was made in the last CHECK_S."""
        conn = self._conns.get(connection) or self._open(connection, ts)
        if conn.suspended and not self._keep_counting:
            return None
        conn.features.complained(ts)
        if conn.suspended or ts - conn.last_check < CHECK_S:
            return None
        return self._check(conn, connection, ts)

    def resume(self, connection: str) -> None:
        """Forget a suspension (an operator resumed the connection)."""
        if (conn := self._conns.get(connection)) is not None:
            conn.suspended = False
            conn.throttled_until = 0.0

    def throttled(self, connection: str) -> bool:
        conn = self._conns.get(connection)
        return conn is not None and conn.throttled_until > 0.0

    def _check(self, conn: _Conn, connection: str, ts: float) -> Verdict | None:
        """Assess a connection whose check is due: suspend, throttle, lift, or nothing."""
        conn.pending, conn.last_check = 0, ts
        if not could_weigh(conn.features):
            return self._lifted(conn, connection, ts) if conn.throttled_until else None
        found = assess(conn.features, conn.baseline, ts, conn.backlog(ts), conn.drift)
        if self._observer is not None:
            self._observer(ts, connection, found)
        if self.thresholds.suspends(found):
            conn.suspended, conn.throttled_until = True, 0.0
            return Verdict(ts, connection, SUSPEND, found.reason(), found.score)
        if found.score < self.thresholds.throttle:
            return self._lifted(conn, connection, ts) if conn.throttled_until else None
        was_throttled = conn.throttled_until > 0.0
        conn.throttled_until = ts + LIFT_S
        if was_throttled:
            return None
        limit = self.cap(connection, ts)
        return Verdict(ts, connection, THROTTLE, found.reason(), found.score, limit)

    def _lifted(self, conn: _Conn, connection: str, ts: float) -> Verdict | None:
        """A LIFT once a throttled connection went LIFT_S without a throttling score."""
        if ts < conn.throttled_until:
            return None
        conn.throttled_until = 0.0
        return Verdict(ts, connection, LIFT, f"no throttling evidence for {LIFT_S / 60:.0f} min")
