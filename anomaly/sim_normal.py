"""Normal traffic of one simulated organisation, a day at a time.

`plan_org(seed, org, days)` decides an organisation's dated events for the
whole period (`OrgPlan`): its server outages, reporting-deadline surges,
newsletter issues, planned mass mailings, holiday greetings and monitoring
alert storms; the incident planner reads it (abuse avoids outages, one kind
hides in surges). `OrgTraffic(seed, org, plan, end).day(day, out)` appends
the events of one day to `out`. The processes:

- office mail: every person and system sender at its own rate, scaled by the
  day (Monday busier, Friday lighter, a random factor; a day off has ~4 % of
  a working day's mail, the day before a holiday ends earlier), at the times
  of the day's profile (sim_calendar); 1 recipient mostly, sometimes several,
  a circular to 10-45; recipients from the sender's contact book, a few never
  mailed before; sizes lognormal per sender (median ~40 KB, a long tail);
- the notification robot: citizens, day and night but mostly by day, about
  half on days off, mostly to addresses never mailed before (5 % dead);
- newsletters: an issue to the whole subscriber list at the list's weekday
  and hour, every 1, 2 or 4 weeks, at the server's throttled rate, one
  recipient a message (or BCC batches), with the list's dead addresses;
- tagged envelope senders: half the newsletters write a new envelope sender
  for each message, as list software does to tell bounces apart (VERP
  `news+ivan=mail.kz@org.kz` for one recipient, BATV `prvs=TAG=news@org.kz`
  for a batch), and a third of the mass mailings a message number
  (`noreply-18f3a2b4c5d6e@org.kz`): one sender, not thousands never seen;
- planned mass mailings: rarely, 500-20000 citizens never mailed before,
  3-10 % of them dead;
- reporting-deadline surges: on a deadline day of the organisation (moved to
  the working day before when it falls on a day off; the last working day of
  a quarter for some), extra mail of 25-90 % of a working day's in a 2-5 hour
  window, from a third to two thirds of the people, most of it large reports
  to the bodies it reports to;
- holiday greetings: on the last working day before a public holiday, a
  greeting with a picture (~1 MB) to many partners, over 1-3 hours;
- auto-replies: null-sender replies (out of office, delivery notices) at
  0.3-2 % of the office mail, a fifth to strangers (spam senders: many dead);
- monitoring: one alert every 3-15 minutes to one address, day and night, and
  storms of an alert every 30-90 s for half an hour to three hours;
- new employees: a person with `since` sends from that day on;
- outages: the server is cut off for 1-12 hours and queues its mail; when it
  comes back it flushes the queue at once (5-50 messages a second, in order),
  many messages to one recipient among them: legitimate.

Each process of each day draws from its own stream (`sub_seed`), so one
organisation's traffic depends only on the seed, the organisation and the
calendar: never on the incidents or on the other organisations.
Promises: every event of a day's call is at or after the day's start and
before the period's end (`end`) for an `accepted`. Nothing here raises.
"""

from __future__ import annotations

import bisect
import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from anomaly.sim_calendar import ALLDAY, DAY_S, Day, draw_times, poisson
from anomaly.sim_events import Event, Mailer
from anomaly.sim_world import (
    FOREIGN,
    FREE,
    GOV,
    KZ,
    Names,
    Org,
    Rcpt,
    Sender,
    World,
    log_uniform,
    sub_rng,
)

WEEKDAY_FACTOR = (1.08, 1.04, 1.0, 1.0, 0.88, 0.9, 0.9)
OFF_SHARE = 0.04  # a day off's office mail against a working day's
MIN_SIZE, MAX_SIZE = 600, 25 * 1024 * 1024
Send = Callable[[float, str, str, list[Rcpt], int], object]


@dataclass
class OrgPlan:
    outages: list[tuple[float, float]] = field(default_factory=list)
    surges: list[tuple[float, float]] = field(default_factory=list)
    newsletters: list[float] = field(default_factory=list)
    mass: list[float] = field(default_factory=list)
    greetings: list[float] = field(default_factory=list)
    storms: list[tuple[float, float]] = field(default_factory=list)

    def busy(self) -> list[tuple[float, float]]:
        """The windows abuse keeps away from: the outages."""
        return list(self.outages)


def _deadline(day: Day, days: list[Day], org: Org) -> bool:
    """Whether reports are due from `org` on `day` (a working day)."""
    if day.index in org.extra_surge_days:
        return True
    if not day.working:
        return False
    for later in days[day.index + 1 :]:  # the days off right after it take their deadlines
        if later.working:
            next_working = later
            break
    else:
        next_working = None
    covered = [day.date]
    if next_working is not None:
        covered += [d.date for d in days[day.index + 1 : next_working.index]]
    if any(d.day in org.deadlines for d in covered):
        return True
    if org.quarter_end and day.date.month in (3, 6, 9, 12):
        return next_working is not None and next_working.date.month != day.date.month
    return False


def plan_org(seed: int, org: Org, days: list[Day]) -> OrgPlan:
    plan = OrgPlan()
    rng = sub_rng(seed, "plan", org.index, "outage")
    for day in days:
        if rng.random() < org.outage_rate:
            length = log_uniform(rng, 3600.0, 12 * 3600.0)
            start = day.start + rng.uniform(0.0, DAY_S - length - 900.0)
            plan.outages.append((start, start + length))
    rng = sub_rng(seed, "plan", org.index, "surge")
    for day in days:
        if _deadline(day, days, org):
            start = day.at(rng.uniform(10.0, 15.0))
            plan.surges.append((start, start + rng.uniform(2.0, 5.0) * 3600.0))
    nl = org.newsletter
    if nl is not None:
        phase = sub_rng(seed, "plan", org.index, "newsletter").randrange(nl.every)
        for day in days:
            week = day.date.isocalendar()[1]
            if day.working and day.date.weekday() == nl.weekday and week % nl.every == phase:
                plan.newsletters.append(day.at(nl.hour))
    rng = sub_rng(seed, "plan", org.index, "mass")
    for day in days:
        if day.working and rng.random() < org.mass_rate:
            plan.mass.append(day.at(rng.uniform(10.0, 16.0)))
    rng = sub_rng(seed, "plan", org.index, "greetings")
    for day in days:
        if org.greets and day.working and day.holiday_ahead:
            plan.greetings.append(day.at(rng.uniform(9.0, 12.0)))
    if org.monitor is not None:
        rng = sub_rng(seed, "plan", org.index, "storms")
        for day in days:
            if rng.random() < 0.04:
                start = day.start + rng.uniform(0.0, DAY_S - 3 * 3600.0)
                plan.storms.append((start, start + log_uniform(rng, 1800.0, 3 * 3600.0)))
    return plan


def _normal_table(n: int) -> tuple[float, ...]:
    """n standard normal quantiles, evenly spaced in probability: a fast normal draw."""
    dist = statistics.NormalDist()
    return tuple(dist.inv_cdf((i + 0.5) / n) for i in range(n))


_NORMAL = _normal_table(8192)
_N_NORMAL = len(_NORMAL)


def _size(rng: random.Random, mu: float, sigma: float) -> int:
    """A lognormal size in bytes, within MIN_SIZE .. MAX_SIZE."""
    size = int(math.exp(mu + sigma * _NORMAL[int(rng.random() * _N_NORMAL)]))
    return MIN_SIZE if size < MIN_SIZE else MAX_SIZE if size > MAX_SIZE else size


def pick(rng: random.Random, book: list[Rcpt], cum: list[float]) -> Rcpt:
    """One contact of a book, by its cumulative weights."""
    return book[bisect.bisect(cum, rng.random() * cum[-1])]


class OrgTraffic:
    def __init__(self, world: World, org: Org, plan: OrgPlan, end: float) -> None:
        self.world = world
        self.seed = world.seed
        self.org = org
        self.plan = plan
        self.end = end

    def day(self, day: Day, out: list[Event]) -> None:
        """Append the normal events of `day` to `out`."""
        org = self.org
        outages = [(s, e) for s, e in self.plan.outages if day.start <= s < day.end]
        flush_rng = sub_rng(self.seed, "flush", org.index, day.index)
        mailer = Mailer(out, flush_rng, org.domain, 0, self.end)
        queued: list[tuple[float, str, str, list[Rcpt], int]] = []

        def queue(t: float, ip: str, sender: str, rcpts: list[Rcpt], size: int) -> bool:
            for s, e in outages:
                if s <= t < e:
                    queued.append((t, ip, sender, rcpts, size))
                    return True
            return mailer.send(t, ip, sender, rcpts, size)

        def stream(name: str) -> tuple[random.Random, Send]:
            rng = sub_rng(self.seed, name, org.index, day.index)
            direct = Mailer(out, rng, org.domain, 0, self.end)
            return rng, (queue if outages else direct.send)

        office = self._office(day, *stream("office"))
        if org.notify is not None:
            self._notify(day, org.notify, *stream("notify"))
        self._newsletters(day, *stream("newsletter"))
        self._mass(day, *stream("mass"))
        self._surges(day, *stream("surge"))
        self._greetings(day, *stream("greetings"))
        self._autoreplies(day, office, *stream("autoreply"))
        self._monitor(day, *stream("monitor"))
        for s, e in outages:  # the server is back: its queue goes out at once, in order
            backlog = sorted((q for q in queued if s <= q[0] < e), key=lambda q: q[0])
            rate = log_uniform(flush_rng, 5.0, 50.0)
            for i, (_, ip, sender, rcpts, size) in enumerate(backlog):
                mailer.send(e + i / rate + flush_rng.random() * 0.05, ip, sender, rcpts, size)

    def _office(self, day: Day, rng: random.Random, send: Send) -> int:
        """People and system senders; the number of messages."""
        org = self.org
        senders = [s for s in (*org.people, *org.system, *org.rare) if s.since <= day.index]
        if not senders:
            return 0
        factor = rng.lognormvariate(0.0, 0.12)
        if day.working:
            factor *= WEEKDAY_FACTOR[day.date.weekday()] * (0.85 if day.short else 1.0)
        else:
            factor *= OFF_SHARE
        cum: list[float] = []
        total = 0.0
        for s in senders:
            total += s.rate
            cum.append(total)
        n = poisson(rng, total * factor)
        chosen = rng.choices(senders, cum_weights=cum, k=n)
        times = draw_times(rng, day.profile, n, day.start)
        names = Names(rng, self.world)
        ips = org.ips
        rand = rng.random
        for s, t in zip(chosen, times, strict=True):
            book, bcum = s.book, s.cum
            if rand() >= s.multi:
                rcpts = [book[bisect.bisect(bcum, rand() * bcum[-1])]]
            else:
                k = 2 + int(rng.expovariate(0.45)) if rand() < 0.92 else rng.randint(10, 45)
                rcpts = list(dict.fromkeys(rng.choices(book, cum_weights=bcum, k=k)))
            if s.fresh and rand() < s.fresh:
                cls = bisect.bisect(s.fresh_cum, rand() * s.fresh_cum[-1])
                rcpts[0] = names.rcpt(min(cls, FOREIGN), 0.03, org.domain)
            size = _size(rng, s.size_mu, s.size_sigma)
            send(t, ips[s.server], s.address, rcpts, size)
        return n

    def _notify(self, day: Day, s: Sender, rng: random.Random, send: Send) -> None:
        mean = s.rate * (1.0 if day.working else 0.45) * rng.lognormvariate(0.0, 0.15)
        n = poisson(rng, mean)
        names = Names(rng, self.world)
        ip = self.org.ips[s.server]
        rand = rng.random
        for t in draw_times(rng, ALLDAY, n, day.start):
            if rand() < s.fresh:
                rcpt = names.rcpt(FREE if rand() < 0.9 else KZ, 0.05)
            else:
                rcpt = pick(rng, s.book, s.cum)
            send(t, ip, s.address, [rcpt], _size(rng, s.size_mu, s.size_sigma))

    def _newsletters(self, day: Day, rng: random.Random, send: Send) -> None:
        nl = self.org.newsletter
        if nl is None:
            return
        for start in self.plan.newsletters:
            if not day.start <= start < day.end:
                continue
            s = nl.sender
            size = _size(rng, s.size_mu, 0.01)
            ip = self.org.ips[s.server]
            gap = 60.0 / nl.rate
            t = start
            tagged = self.org.index % 2 == 1  # half the lists tag each message's sender
            for i in range(0, len(nl.subscribers), nl.batch):
                batch = nl.subscribers[i : i + nl.batch]
                sender = _tagged(s.address, batch, t) if tagged else s.address
                send(t, ip, sender, batch, size + rng.randint(0, 40))
                t += gap * rng.uniform(0.5, 1.5)

    def _mass(self, day: Day, rng: random.Random, send: Send) -> None:
        org = self.org
        s = org.notify or (org.system[0] if org.system else None)
        if s is None:
            return
        names = Names(rng, self.world)
        for start in self.plan.mass:
            if not day.start <= start < day.end:
                continue
            count = int(log_uniform(rng, 500.0, 20000.0))
            gap = 60.0 / log_uniform(rng, 50.0, 400.0)
            dead = rng.uniform(0.03, 0.1)
            size = _size(rng, 10.0, 0.3)
            ip = org.ips[s.server]
            t = start
            tagged = org.index % 3 == 1  # a third number each message's sender
            for _ in range(count):
                cls = FREE if rng.random() < 0.8 else KZ if rng.random() < 0.75 else FOREIGN
                local, domain = s.address.split("@")
                sender = f"{local}-{int(t * 1e6):x}@{domain}" if tagged else s.address
                send(t, ip, sender, [names.rcpt(cls, dead, org.domain)], size)
                t += gap * rng.uniform(0.5, 1.5)

    def _surges(self, day: Day, rng: random.Random, send: Send) -> None:
        org = self.org
        people = [p for p in org.people if p.since <= day.index]
        for start, end in self.plan.surges:
            if not day.start <= start < day.end or not people:
                continue
            usual = sum(p.rate for p in people) * 0.6  # the office's mail of those hours
            n = poisson(rng, usual * rng.uniform(0.4, 1.5))
            busy = rng.sample(people, max(1, int(len(people) * rng.uniform(0.3, 0.7))))
            for _ in range(n):
                s = rng.choice(busy)
                t = start + (end - start) * math.sqrt(rng.random())  # more near the deadline
                if rng.random() < 0.6:
                    rcpts = [rng.choice(org.report_targets)]
                    size = _size(rng, 12.0, 0.8)
                else:
                    rcpts = [pick(rng, s.book, s.cum)]
                    size = _size(rng, s.size_mu, s.size_sigma)
                if rng.random() < 0.15:
                    rcpts = list(dict.fromkeys([*rcpts, rng.choice(org.report_targets)]))
                send(t, org.ips[s.server], s.address, rcpts, size)

    def _greetings(self, day: Day, rng: random.Random, send: Send) -> None:
        org = self.org
        for start in self.plan.greetings:
            if not day.start <= start < day.end:
                continue
            press = [s for s in org.system if s.address.startswith(("press", "smi", "kanc"))]
            s = press[0] if press else org.people[0]
            gov = [r for r in org.pool if r[1] == GOV] or org.pool
            length = rng.uniform(1.0, 3.0) * 3600.0
            size = _size(rng, 13.8, 0.3)  # a picture: ~1 MB
            for _ in range(rng.randint(30, 400)):
                k = 1 if rng.random() < 0.6 else rng.randint(2, 30)
                pool = gov if rng.random() < 0.7 else org.pool
                rcpts = list(dict.fromkeys(rng.choices(pool, k=k)))
                send(start + rng.random() * length, org.ips[s.server], s.address, rcpts, size)

    def _autoreplies(self, day: Day, office: int, rng: random.Random, send: Send) -> None:
        org = self.org
        n = poisson(rng, office * org.autoreply + 0.5)
        names = Names(rng, self.world)
        times = draw_times(rng, day.profile, n, day.start)
        for t in times:
            if rng.random() < 0.8:
                rcpt = rng.choice(org.pool)
            else:  # a reply to a stranger: often a spam sender's forged address
                rcpt = names.rcpt(rng.choice((FREE, FOREIGN)), 0.4)
            send(t, org.ips[0], "", [rcpt], _size(rng, 8.5, 0.4))

    def _monitor(self, day: Day, rng: random.Random, send: Send) -> None:
        mon = self.org.monitor
        if mon is None:
            return
        s = mon.sender
        ip = self.org.ips[s.server]
        storms = [(a, b) for a, b in self.plan.storms if a < day.end and b > day.start]
        t = day.start + rng.uniform(0.0, mon.period_s)
        while t < day.end:
            send(t, ip, s.address, [mon.target], _size(rng, 8.3, 0.2))
            stormy = any(a <= t < b for a, b in storms)
            t += rng.uniform(30.0, 90.0) if stormy else mon.period_s * rng.uniform(0.8, 1.2)


def _tagged(address: str, rcpts: list[Rcpt], t: float) -> str:
    """`address` tagged for one message: VERP for one recipient, else BATV."""
    local, domain = address.split("@")
    if len(rcpts) == 1:
        user, at = rcpts[0][0].split("@")
        return f"{local}+{user}={at}@{domain}"
    return f"prvs={int(t) % 0xFFFFFFFFFF:010x}={local}@{domain}"
