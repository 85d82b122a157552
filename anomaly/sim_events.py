"""Trace events of simulated messages: one `accepted` and the outcome of each recipient.

`Mailer(out, rng, connection, tag)` appends to `out` the events of the messages
it is given, as `Event`s: (ts, line, tag), where `line` is the msgspec struct
written as one line of TRACE-FORMAT.md (fields in its order) and `tag` is 0
for normal traffic or the number of the incident the message belongs to
(never written: the labels and the tests use it). Times are rounded to the
millisecond, as in the recorded traces.

Outcomes of normal mail (`send`): a dead mailbox bounces at once (550, or
551/553 for a REFUSED one); otherwise a recipient is deferred with a chance by
its domain's class (greylisting and busy servers: 450, 451, 421), retried
after minutes with back-off and then delivered; the rest is delivered after
seconds (a few after minutes). Abusive mail (`send_abusive`) meets an
`AbuseOutcomes`: also refused as spam (554, or 550 5.7.1 where only the code
shows), rate-limited (421/450, retried, in the end delivered or refused),
and every retry of it ends within `ABUSE_TRAIL_S` of its acceptance.

Promises: the events of one message are in time order and never before its
acceptance; the same calls on the same random stream give the same events.
Nothing here raises.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import msgspec

from anomaly.sim_world import UNKNOWN, Rcpt


class AcceptedLine(msgspec.Struct, gc=False):
    ts: float
    connection: str
    ip: str
    event: str
    sender: str
    rcpts: list[str]
    size: int


class OutcomeLine(msgspec.Struct, gc=False):
    ts: float
    connection: str
    ip: str
    event: str
    rcpt: str
    code: int


Line = AcceptedLine | OutcomeLine
Event = tuple[float, Line, int]  # (ts, line, tag): tag 0 normal, else the incident's number

DEFER_CHANCE = (0.004, 0.02, 0.035, 0.025)  # by class: gov.kz, .kz, free-mail, foreign
DEFER_CODES = (450, 450, 451, 451, 421)
REFUSED_CODES = (553, 553, 551)
ABUSE_TRAIL_S = 3000.0
_TABLE = 4096


def _delays(seed: int, median: float, sigma: float, slow: float) -> tuple[float, ...]:
    """A fixed table of delivery delays: lognormal, with a share `slow` of minutes."""
    rng = random.Random(seed)
    mu = math.log(median)
    return tuple(
        rng.uniform(20.0, 900.0) if rng.random() < slow else rng.lognormvariate(mu, sigma)
        for _ in range(_TABLE)
    )


DELIVERY_DELAYS = _delays(1, 2.2, 0.65, 0.015)
BOUNCE_DELAYS = _delays(2, 1.2, 0.6, 0.005)


@dataclass(frozen=True, slots=True)
class AbuseOutcomes:
    """What receiving servers make of one incident's mail (chances per recipient)."""

    refused: float = 0.05  # refused as spam or by policy: 554 / 550
    limited: float = 0.05  # rate-limited: deferred, retried


class Mailer:
    __slots__ = ("connection", "end", "out", "rng", "tag")

    def __init__(
        self, out: list[Event], rng: random.Random, connection: str, tag: int, end: float
    ) -> None:
        self.out = out
        self.rng = rng
        self.connection = connection
        self.tag = tag
        self.end = end  # nothing is accepted from this moment on (the period's end)

    def _accepted(self, t: float, ip: str, sender: str, rcpts: list[Rcpt], size: int) -> bool:
        """The `accepted` line of a message at `t`; False (nothing made) at or after the end."""
        if t >= self.end:
            return False
        ts = round(t, 3)
        line = AcceptedLine(
            ts, self.connection, ip, "accepted", sender, [a for a, _ in rcpts], size
        )
        self.out.append((ts, line, self.tag))
        return True

    def send(self, t: float, ip: str, sender: str, rcpts: list[Rcpt], size: int) -> bool:
        """A normal message accepted at `t`; False (nothing made) at or after the end."""
        if not self._accepted(t, ip, sender, rcpts, size):
            return False
        out, rng, conn, tag = self.out, self.rng, self.connection, self.tag
        rand = rng.random
        for addr, fate in rcpts:
            if fate >= UNKNOWN:
                at = round(t + BOUNCE_DELAYS[int(rand() * _TABLE)], 3)
                code = 550 if fate == UNKNOWN else REFUSED_CODES[int(rand() * 3)]
                out.append((at, OutcomeLine(at, conn, ip, "bounced", addr, code), tag))
                continue
            at = t + DELIVERY_DELAYS[int(rand() * _TABLE)]
            if rand() < DEFER_CHANCE[fate]:
                at = self._retries(at, ip, addr, 900.0)
            at = round(at, 3)
            out.append((at, OutcomeLine(at, conn, ip, "delivered", addr, 250), tag))
        return True

    def _retries(self, at: float, ip: str, addr: str, first_gap: float) -> float:
        """Deferrals from `at` on, each retried after a growing gap; the time of the try
        that goes through."""
        rng, conn, tag = self.rng, self.connection, self.tag
        gap = first_gap
        code = DEFER_CODES[int(rng.random() * len(DEFER_CODES))]
        while True:
            ts = round(at, 3)
            self.out.append((ts, OutcomeLine(ts, conn, ip, "deferred", addr, code), tag))
            at += rng.uniform(0.3, 1.0) * gap + 60.0
            gap *= 2.0
            if rng.random() < 0.7:
                return at

    def send_abusive(
        self, t: float, ip: str, sender: str, rcpts: list[Rcpt], size: int, fate: AbuseOutcomes
    ) -> bool:
        """An abusive message accepted at `t`; False (nothing made) at or after the end."""
        if not self._accepted(t, ip, sender, rcpts, size):
            return False
        out, rng, conn, tag = self.out, self.rng, self.connection, self.tag
        for addr, cls in rcpts:
            u = rng.random()
            at = t + BOUNCE_DELAYS[int(rng.random() * _TABLE)]
            if cls >= UNKNOWN:
                code = 550 if cls == UNKNOWN else REFUSED_CODES[int(rng.random() * 3)]
                event = "bounced"
            elif u < fate.refused:
                code, event = (554 if rng.random() < 0.6 else 550), "bounced"
            elif u < fate.refused + fate.limited:
                at = self._limited(at, ip, addr, t + ABUSE_TRAIL_S)
                refused = rng.random() < 0.3
                code, event = (554, "bounced") if refused else (250, "delivered")
            else:
                at = t + DELIVERY_DELAYS[int(rng.random() * _TABLE)]
                code, event = 250, "delivered"
            at = round(min(at, t + ABUSE_TRAIL_S), 3)
            out.append((at, OutcomeLine(at, conn, ip, event, addr, code), tag))
        return True

    def _limited(self, at: float, ip: str, addr: str, until: float) -> float:
        """Rate-limit deferrals (421/450) from `at`, retried every few minutes, never past
        `until`; the time of the last try."""
        rng, conn, tag = self.rng, self.connection, self.tag
        code = 421 if rng.random() < 0.6 else 450
        tries = rng.randint(1, 4)
        for _ in range(tries):
            ts = round(at, 3)
            self.out.append((ts, OutcomeLine(ts, conn, ip, "deferred", addr, code), tag))
            nxt = at + rng.uniform(300.0, 900.0)
            if nxt >= until:
                break
            at = nxt
        return min(at + 1.0, until)
