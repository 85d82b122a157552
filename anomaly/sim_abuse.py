"""The red team's abuse kinds: a registry of name -> generator, each with its ranges.

`KINDS` maps each kind's name (the `kind` of the labels) to a `Kind`: what it
does, why a detector tuned on the public weeks may miss it, when it happens
(`when`: any time, working hours, or inside a reporting-deadline surge of its
connection), its duration range, what the organisation needs for it (`needs`,
and `grant` to give it that when no organisation has it) and `make`, which
turns an `Attack` (one incident: its organisation, planned window, random
stream and `Mailer` tagged with the incident's number) into events. Every
parameter of an incident is drawn from the ranges documented in its
generator, so two incidents of a kind differ in rate, recipients per message,
sizes, the share of free-mail and foreign recipients and bounce rates.
Receiving servers treat the abuse as they would (sim_events.AbuseOutcomes):
refused as spam (554/550), rate-limited (421/450, retried), unknown users
(550) for guessed or stale addresses.

Promises: an attack accepts messages only inside its planned window and
before the period's end; `Attack.first`/`last` are the times of its first and
last accepted message as written (the labels' start and end); its outcomes
trail its last message by at most `sim_events.ABUSE_TRAIL_S`. A generator
that cannot find what it needs falls back (a person of the organisation, its
first server) rather than fail. Nothing here raises.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from anomaly.sim_events import AbuseOutcomes, Mailer
from anomaly.sim_normal import OrgPlan, pick
from anomaly.sim_world import (
    FOREIGN,
    FREE,
    FREE_MAIL,
    GOV,
    KZ,
    OTHER_GOV,
    UNKNOWN,
    Names,
    Org,
    Rcpt,
    Sender,
    World,
    grant_newsletter,
    grant_second_domain,
    log_uniform,
)

MINUTE = 60.0
HOUR = 3600.0
WORK_MINUTES = 540.0  # a person's mail of a working day falls in about nine hours


@dataclass(eq=False)
class Attack:
    """One incident being generated."""

    number: int
    org: Org
    world: World
    plan: OrgPlan
    start: float
    end: float  # planned; nothing is accepted after it
    day_index: int  # the day of `start`
    rng: random.Random
    mailer: Mailer
    fate: AbuseOutcomes = field(default_factory=AbuseOutcomes)
    first: float | None = None
    last: float | None = None
    messages: int = 0

    @property
    def names(self) -> Names:
        return Names(self.rng, self.world)

    def send(self, t: float, sender: str, rcpts: list[Rcpt], size: int, ip: str = "") -> None:
        if not self.start <= t <= self.end or not rcpts:
            return
        if self.mailer.send_abusive(t, ip or self.org.ips[0], sender, rcpts, size, self.fate):
            ts = round(t, 3)
            self.first = ts if self.first is None else min(self.first, ts)
            self.last = ts if self.last is None else max(self.last, ts)
            self.messages += 1

    def times(self, per_minute: float, start: float = 0.0, end: float = 0.0) -> Iterator[float]:
        """A Poisson process of `per_minute` from `start` to `end` (default: the window)."""
        t, end = start or self.start, end or self.end
        rate = per_minute / MINUTE
        while True:
            t += self.rng.expovariate(rate)
            if t > end:
                return
            yield t

    def person(self) -> Sender:
        """A person of the organisation who mails already (never a newcomer of later on)."""
        active = [p for p in self.org.people if p.since <= self.day_index] or self.org.people
        return self.rng.choice(active)

    def ip_of(self, sender: Sender) -> str:
        return self.org.ips[min(sender.server, len(self.org.ips) - 1)]

    def spam(self, n: int, free: float, unknown: float, kz: float = 0.1) -> list[Rcpt]:
        """n recipients never mailed before: free-mail (share `free`), .kz businesses
        (`kz`), foreign (the rest); each an unknown user with chance `unknown`."""
        r, names = self.rng, self.names
        out: list[Rcpt] = []
        for _ in range(n):
            u = r.random()
            cls = FREE if u < free else KZ if u < free + kz else FOREIGN
            addr = names.address(cls, self.org.domain)
            out.append((addr, UNKNOWN if r.random() < unknown else cls))
        return list(dict.fromkeys(out))

    def size(self, median: float, sigma: float) -> int:
        return max(600, int(self.rng.lognormvariate(math.log(median), sigma)))


@dataclass(frozen=True)
class Kind:
    name: str
    does: str
    slips: str  # why a detector tuned on the public weeks may miss it
    when: str  # "any" | "work" | "surge"
    duration: tuple[float, float]  # seconds, drawn log-uniformly
    make: Callable[[Attack], None]
    needs: Callable[[Org], bool] | None = None
    grant: Callable[[World, Org, random.Random], None] | None = None


def _open_relay(a: Attack) -> None:
    """0.5-25 messages/min, 1..(1-20) recipients each, from a new forged sender each time
    (0-40 % at the organisation's own domain), free-mail 20-90 %, unknown 5-40 %,
    2-20 KB."""
    r = a.rng
    per_min, nmax = log_uniform(r, 0.5, 25.0), r.randint(1, 20)
    free, unknown, own = r.uniform(0.2, 0.9), r.uniform(0.05, 0.4), r.uniform(0.0, 0.4)
    median = log_uniform(r, 2000.0, 20000.0)
    names = a.names
    for t in a.times(per_min):
        if r.random() < own:
            domain = a.org.domain
        else:
            domain = names.address(r.choice((FREE, FOREIGN, KZ))).split("@")[1]
        sender = f"{names.free_local()}@{domain}"
        a.send(t, sender, a.spam(r.randint(1, nmax), free, unknown), a.size(median, 0.5))


def _backscatter(a: Attack) -> None:
    """Null-sender bounces to the forged senders of spam the server accepted: 0.3-10 a
    minute, one recipient each at random domains, unknown 20-70 %, 2.5-40 KB."""
    r = a.rng
    per_min, unknown = log_uniform(r, 0.3, 10.0), r.uniform(0.2, 0.7)
    free, median = r.uniform(0.2, 0.7), log_uniform(r, 2500.0, 40000.0)
    ip = r.choice(a.org.ips)
    for t in a.times(per_min):
        a.send(t, "", a.spam(1, free, unknown), a.size(median, 0.4), ip)


def _mail_loop(a: Attack) -> None:
    """One sender->recipient pair (an auto-forward bouncing back) every 2-40 s, the size
    growing by 200-600 bytes a hop (Received headers); mostly delivered."""
    r = a.rng
    s = a.person() if r.random() < 0.8 else (a.org.system or a.org.people)[0]
    rcpt = pick(r, s.book, s.cum)
    if rcpt[1] >= UNKNOWN or r.random() < 0.3:
        rcpt = (f"{a.names.free_local()}@{r.choice(FREE_MAIL)}", FREE)
    gap, hop = r.uniform(2.0, 40.0), r.uniform(200.0, 600.0)
    size = a.size(math.exp(s.size_mu), 0.3)
    a.fate = AbuseOutcomes(r.uniform(0.0, 0.02), r.uniform(0.0, 0.1))
    t, i = a.start, 0
    while t <= a.end:
        a.send(t, s.address, [rcpt], size + int(i * hop), a.ip_of(s))
        t += gap * r.uniform(0.7, 1.3)
        i += 1


def _compromised(a: Attack) -> None:
    """An existing person's mailbox blasting: 1-30 messages/min, 1..(1-50) recipients,
    free-mail 30-90 %, unknown 5-35 %, 3-60 KB."""
    r = a.rng
    s = a.person()
    per_min, nmax = log_uniform(r, 1.0, 30.0), r.randint(1, 50)
    free, unknown, median = r.uniform(0.3, 0.9), r.uniform(0.05, 0.35), log_uniform(r, 3e3, 6e4)
    for t in a.times(per_min):
        rcpts = a.spam(r.randint(1, nmax), free, unknown)
        a.send(t, s.address, rcpts, a.size(median, 0.4), a.ip_of(s))


def _slow_ramp(a: Attack) -> None:
    """1-3 existing people; the rate starts at 20-100 % of the organisation's usual
    office rate and grows (linearly or exponentially) 5-40 times by the end of 2-8 h;
    1-5 recipients, free-mail 30-90 %, unknown 2-20 %."""
    r = a.rng
    senders = [a.person() for _ in range(r.randint(1, 3))]
    usual = sum(p.rate for p in a.org.people) / WORK_MINUTES
    r0 = max(0.05, usual * r.uniform(0.2, 1.0))
    growth = log_uniform(r, 5.0, 40.0)
    exponential = r.random() < 0.5
    free, unknown, median = r.uniform(0.3, 0.9), r.uniform(0.02, 0.2), log_uniform(r, 3e3, 5e4)
    length = a.end - a.start
    t = a.start
    while True:
        x = (t - a.start) / length
        rate = r0 * (growth**x if exponential else 1.0 + (growth - 1.0) * x)
        t += r.expovariate(rate / MINUTE)
        if t > a.end:
            return
        s = r.choice(senders)
        rcpts = a.spam(r.randint(1, 5), free, unknown)
        a.send(t, s.address, rcpts, a.size(median, 0.5), a.ip_of(s))


def _distributed(a: Attack) -> None:
    """15-60 % of the existing people (at least 3 where there are), each at 2-6 times its
    own usual rate, 1-3 recipients never mailed, free-mail 30-90 %, unknown 2-15 %,
    each person's own sizes."""
    r = a.rng
    active = [p for p in a.org.people if p.since <= a.day_index] or a.org.people
    k = min(len(active), max(3, int(len(active) * r.uniform(0.15, 0.6))))
    mult = r.uniform(2.0, 6.0)
    free, unknown = r.uniform(0.3, 0.9), r.uniform(0.02, 0.15)
    for s in r.sample(active, k):
        for t in a.times(s.rate / WORK_MINUTES * mult):
            size = max(600, int(r.lognormvariate(s.size_mu, s.size_sigma)))
            a.send(t, s.address, a.spam(r.randint(1, 3), free, unknown), size, a.ip_of(s))


def _newsletter_shaped(a: Attack) -> None:
    """The organisation's own newsletter sender at 50-120 % of its usual rate and its
    batch, its issue's size +-10 %, but to 300-8000 addresses never mailed before:
    foreign 30-80 %, the rest free-mail; unknown 3-25 %."""
    r = a.rng
    nl = a.org.newsletter
    if nl is None:
        return
    s = nl.sender
    gap = MINUTE / (nl.rate * r.uniform(0.5, 1.2))
    budget = r.randint(300, 8000)
    foreign, unknown = r.uniform(0.3, 0.8), r.uniform(0.03, 0.25)
    size = int(math.exp(s.size_mu) * r.uniform(0.9, 1.1))
    t = a.start
    while t <= a.end and budget > 0:
        n = min(budget, nl.batch)
        rcpts = a.spam(n, 1.0 - foreign, unknown, kz=0.0)
        a.send(t, s.address, rcpts, size + r.randint(0, 40), a.ip_of(s))
        budget -= n
        t += gap * r.uniform(0.5, 1.5)


def _under_threshold(a: Attack) -> None:
    """Bursts of 75-99 % of 200 messages in 8-10 minutes (just under a fixed 200/10 min
    threshold), gaps of 0-40 min, from 1-3 existing people in turn; one recipient
    (sometimes 2-3), free-mail 40-90 %, unknown 2-12 %."""
    r = a.rng
    senders = [a.person() for _ in range(r.randint(1, 3))]
    free, unknown, median = r.uniform(0.4, 0.9), r.uniform(0.02, 0.12), log_uniform(r, 3e3, 3e4)
    t = a.start
    while t < a.end:
        length = r.uniform(8.0, 10.0) * MINUTE
        count = r.randint(150, 199)
        s = r.choice(senders)
        for u in sorted(t + r.random() * length for _ in range(count)):
            n = 1 if r.random() < 0.85 else r.randint(2, 3)
            a.send(u, s.address, a.spam(n, free, unknown), a.size(median, 0.4), a.ip_of(s))
        t += length + r.uniform(0.0, 40.0) * MINUTE


def _on_off(a: Attack) -> None:
    """Bursts of 0.5-4 minutes at 10-60 messages/min with quiet gaps of 8-60 minutes,
    from one existing person; 1..(1-10) recipients, free-mail 30-90 %, unknown 3-25 %."""
    r = a.rng
    s = a.person()
    per_min, nmax = log_uniform(r, 10.0, 60.0), r.randint(1, 10)
    free, unknown, median = r.uniform(0.3, 0.9), r.uniform(0.03, 0.25), log_uniform(r, 3e3, 4e4)
    t = a.start
    while t < a.end:
        burst = r.uniform(0.5, 4.0) * MINUTE
        for u in a.times(per_min, t, min(a.end, t + burst)):
            rcpts = a.spam(r.randint(1, nmax), free, unknown)
            a.send(u, s.address, rcpts, a.size(median, 0.4), a.ip_of(s))
        t += burst + r.uniform(8.0, 60.0) * MINUTE


def _hidden_in_surge(a: Attack) -> None:
    """Inside a reporting-deadline surge of the same organisation: 2-6 existing people
    add spam at 0.3-3 messages/min in all, 1-5 recipients, free-mail 30-90 %,
    unknown 2-15 %, the senders' own sizes."""
    r = a.rng
    senders = [a.person() for _ in range(r.randint(2, 6))]
    free, unknown = r.uniform(0.3, 0.9), r.uniform(0.02, 0.15)
    for t in a.times(r.uniform(0.3, 3.0)):
        s = r.choice(senders)
        size = max(600, int(r.lognormvariate(s.size_mu, s.size_sigma)))
        a.send(t, s.address, a.spam(r.randint(1, 5), free, unknown), size, a.ip_of(s))


def _dictionary(a: Attack) -> None:
    """Guessed addresses (names, initials, common words) at 1-4 domains: 0.5-10
    messages/min, 1..(1-30) recipients, unknown 60-95 %; from a new local part at the
    organisation's domain or an existing person."""
    r, names = a.rng, a.names
    domains = [
        names.business_domain() if r.random() < 0.5 else names.foreign_domain()
        for _ in range(r.randint(1, 4))
    ]
    if r.random() < 0.5:
        local = f"{r.choice(('info', 'admin', 'mail', 'office'))}{r.randint(1, 99)}"
        sender, ip = f"{local}@{a.org.domain}", a.org.ips[0]
    else:
        s = a.person()
        sender, ip = s.address, a.ip_of(s)
    per_min, nmax, unknown = log_uniform(r, 0.5, 10.0), r.randint(1, 30), r.uniform(0.6, 0.95)
    words = ("admin", "info", "sales", "office", "hr", "support", "director", "buh", "manager")
    for t in a.times(per_min):
        rcpts: list[Rcpt] = []
        for _ in range(r.randint(1, nmax)):
            if r.random() < 0.6:
                local = names.person_local()
            else:
                local = r.choice(words) + (str(r.randint(1, 30)) if r.random() < 0.5 else "")
            rcpts.append((f"{local}@{r.choice(domains)}", UNKNOWN if r.random() < unknown else KZ))
        a.send(t, sender, list(dict.fromkeys(rcpts)), a.size(4000.0, 0.3), ip)


def _large_few_foreign(a: Attack) -> None:
    """A compromised mailbox sends 3-30 large messages (2-15 MB) over 10 min-2 h, each
    to 20-100 recipients at as many foreign domains; unknown 5-25 %, refused 5-30 %."""
    r = a.rng
    s = a.person()
    a.fate = AbuseOutcomes(r.uniform(0.05, 0.3), r.uniform(0.02, 0.15))
    median, unknown = log_uniform(r, 2e6, 15e6), r.uniform(0.05, 0.25)
    names = a.names
    length = a.end - a.start
    for t in sorted(a.start + r.random() * length for _ in range(r.randint(3, 30))):
        rcpts: list[Rcpt] = []
        for _ in range(r.randint(20, 100)):
            addr = f"{names.free_local()}@{names.foreign_domain()}"
            rcpts.append((addr, UNKNOWN if r.random() < unknown else FOREIGN))
        a.send(t, s.address, list(dict.fromkeys(rcpts)), a.size(median, 0.3), a.ip_of(s))


def _rare_domain(a: Attack) -> None:
    """Through the organisation's rarely used second domain: its 1-3 usual senders there
    and 0-3 new ones, 0.5-10 messages/min, 1..(1-10) recipients, free-mail 30-90 %,
    unknown 5-30 %."""
    r = a.rng
    domain = a.org.second_domain or a.org.domain
    senders = [s.address for s in a.org.rare]
    new = r.randint(0 if senders else 1, 3)
    senders += [f"{a.names.person_local()}@{domain}" for _ in range(new)]
    per_min, nmax = log_uniform(r, 0.5, 10.0), r.randint(1, 10)
    free, unknown, median = r.uniform(0.3, 0.9), r.uniform(0.05, 0.3), log_uniform(r, 3e3, 4e4)
    for t in a.times(per_min):
        rcpts = a.spam(r.randint(1, nmax), free, unknown)
        a.send(t, r.choice(senders), rcpts, a.size(median, 0.4))


def _phish_internal(a: Attack) -> None:
    """Credential phishing from an existing person: 30-400 messages over 1-6 working
    hours, 1-5 recipients at other gov.kz bodies never mailed before (guessed names:
    unknown 5-20 %), 8-40 KB; government servers rarely refuse it."""
    r = a.rng
    s = a.person()
    known = a.org.known()
    domains = [d for d in a.world.domains if d != a.org.domain] + list(OTHER_GOV)
    names = a.names
    a.fate = AbuseOutcomes(r.uniform(0.0, 0.05), r.uniform(0.0, 0.05))
    unknown, median = r.uniform(0.05, 0.2), log_uniform(r, 8e3, 4e4)
    length = a.end - a.start
    for t in sorted(a.start + r.random() * length for _ in range(r.randint(30, 400))):
        rcpts: list[Rcpt] = []
        for _ in range(r.randint(1, 5)):
            addr = f"{names.person_local()}@{r.choice(domains)}"
            if addr not in known:
                rcpts.append((addr, UNKNOWN if r.random() < unknown else GOV))
        a.send(t, s.address, list(dict.fromkeys(rcpts)), a.size(median, 0.3), a.ip_of(s))


def _has_newsletter(org: Org) -> bool:
    return org.newsletter is not None


def _has_second_domain(org: Org) -> bool:
    return org.second_domain is not None


M, H = MINUTE, HOUR
PUBLIC = "a kind of the public weeks: the detector was tuned on it"
KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("open-relay", "many never-seen senders relaying spam", PUBLIC,
             "any", (15 * M, 3 * H), _open_relay),
        Kind("backscatter", "null-sender bounces to forged senders", PUBLIC,
             "any", (30 * M, 4 * H), _backscatter),
        Kind("mail-loop", "one sender->recipient pair repeating every 2-40 s", PUBLIC,
             "any", (10 * M, 3 * H), _mail_loop),
        Kind("compromised-mailbox", "one existing sender blasting spam", PUBLIC,
             "any", (15 * M, 4 * H), _compromised),
        Kind("slow-ramp", "an hours-long ramp from the usual rate to 5-40x", PUBLIC,
             "any", (2 * H, 8 * H), _slow_ramp),
        Kind("distributed-senders",
             "spam from 15-60 % of the existing senders, each at 2-6x its own rate",
             "no new sender, no pair repeats, each sender looks normal; total volume modest",
             "work", (1 * H, 8 * H), _distributed),
        Kind("newsletter-shaped",
             "the own newsletter sender, usual size and rate, to never-seen foreign/free-mail",
             "a known sender at a volume the baseline learned from its issues",
             "work", (20 * M, 4 * H), _newsletter_shaped, _has_newsletter,
             grant_newsletter),
        Kind("under-threshold", "bursts just under 200 messages/10 min, repeated",
             "stays under any fixed rate threshold; a known sender",
             "any", (40 * M, 5 * H), _under_threshold),
        Kind("on-off", "bursts of 0.5-4 min with 8-60 min quiet gaps",
             "each burst is short; hourly windows and baselines average it away",
             "any", (1 * H, 8 * H), _on_off),
        Kind("hidden-in-surge", "spam from existing senders inside a reporting-deadline surge",
             "the volume is expected then; few bounces; known senders",
             "surge", (1 * H, 3 * H), _hidden_in_surge),
        Kind("dictionary-attack", "guessed addresses at 1-4 domains: mostly 550",
             "bounce-driven, small volume; may come from a known sender",
             "any", (10 * M, 2 * H), _dictionary),
        Kind("large-few-foreign", "3-30 messages of 2-15 MB, each to 20-100 foreign domains",
             "few messages: rates never rise; known sender; bytes and domains only",
             "work", (10 * M, 2 * H), _large_few_foreign),
        Kind("rare-domain", "spam through the rarely used second sender domain",
             "its senders are known (seen before), the primary domain looks calm",
             "any", (20 * M, 4 * H), _rare_domain, _has_second_domain,
             grant_second_domain),
        Kind("phish-internal", "credential phishing to never-mailed gov.kz recipients",
             "modest volume in working hours, government domains, few bounces",
             "work", (1 * H, 6 * H), _phish_internal),
    )
}  # fmt: skip
