"""The simulated world: organisations, their mail servers, senders and contact books.

`build_world(seed, connections)` makes that many connected organisations, as
the simulator's red team sees them (`ugem anomaly simulate`):

- an organisation is a ministry, an akimat, a local department or a state
  company; its staff with external mail is drawn from a heavy-tailed (Pareto)
  distribution by kind, from a handful of people to about 1500;
- its primary domain is its connection id (unique in the world); a quarter have
  a second, rarely used sender domain (an old or a project domain);
- 1-3 servers with 10.x addresses (unique in the world);
- people senders (`a.surname@domain`) and system senders (kanc@, edo@, buh@,
  zakup@, hr@, info@, press@, it@...), some with a notification robot
  (noreply@, portal@...) mailing citizens, a newsletter with its subscribers,
  a monitoring system mailing one address;
- each sender has its own contact book, sampled from its organisation's
  partners (other gov.kz bodies, the world's connections among them, .kz
  businesses, free-mail and foreign addresses), weighted so that a few
  contacts get most of its mail, and its own rate and message sizes. A small
  share of every book is dead (the mailbox is gone: 550 on delivery);
- a few people join during the period (`since`: their first day).

A recipient is a `Rcpt`, (address, fate): its fate is its domain's class
(GOV, KZ, FREE, FOREIGN) or UNKNOWN / REFUSED (the mailbox does not exist:
550, or 551/553). `sub_seed(seed, *path)` derives every random stream from the
seed with a stable hash (blake2b of the seed and a path of names, never
Python's `hash()`), so each organisation depends only on the seed and its
index, and the world on the arguments alone. Nothing here reads the clock.

Promises: same arguments, same world; domains and server addresses unique.
Fails: never for 1..2000 connections (bounds are the caller's to check).
"""

from __future__ import annotations

import hashlib
import itertools
import random
import string
from dataclasses import dataclass, field

GOV, KZ, FREE, FOREIGN, UNKNOWN, REFUSED = 0, 1, 2, 3, 4, 5
Rcpt = tuple[str, int]  # (address, fate)

FREE_MAIL = ("gmail.com", "mail.ru", "bk.ru", "yandex.kz", "inbox.ru", "list.ru", "yandex.ru")
FREE_WEIGHTS = (30, 32, 8, 8, 8, 6, 8)
FOREIGN_FREE = ("outlook.com", "hotmail.com", "yahoo.com", "icloud.com", "qq.com", "rambler.ru")

MINISTRIES = (
    "minfin", "mfa", "mod", "mvd", "adilet", "enbek", "edu", "sci", "dsm", "mdai", "minenergo",
    "ecogeo", "moa", "miid", "mint", "economy", "mks", "mchs", "stat", "antikor", "kgd", "afm",
    "prokuror", "mzsr", "mtsr", "turizm", "minsport", "qaz-audit",
)  # fmt: skip
PLACES = (
    "astana", "almaty", "shymkent", "karaganda", "aktobe", "taraz", "pavlodar", "oskemen",
    "semey", "atyrau", "kostanay", "kyzylorda", "oral", "petropavl", "aktau", "temirtau",
    "turkistan", "kokshetau", "taldykorgan", "ekibastuz", "rudny", "zhezkazgan", "balkhash",
    "satpayev", "kentau", "zhanaozen", "ridder", "stepnogorsk", "lisakovsk", "konaev",
    "kaskelen", "talgar", "aral", "shchuchinsk", "saran", "shakhtinsk", "arkalyk", "zhitikara",
    "aksu", "kulsary", "zharkent", "ayagoz", "priozersk", "akmola", "zhambyl", "zhetysu",
    "abai", "ulytau", "mangystau", "zko", "sko", "vko", "turkestan", "kurchatov", "khromtau",
)  # fmt: skip
DEPARTMENTS = (
    "uz", "uo", "ukult", "usport", "usx", "ufin", "uek", "uarh", "uzem", "upt", "uvp", "usp",
    "uzhkh", "dchs", "dgd", "dp", "upred", "uzan", "ustroy", "uturizm", "uprir", "ugz",
    "uvet", "umol",
)  # fmt: skip
COMPANIES = (
    "vodokanal", "teplo", "energosbyt", "avtojol", "zhilstroy", "gorgaz", "elektroset",
    "tazalyk", "zhylu", "qalatrans", "medcentr", "emhana",
)  # fmt: skip
SURNAMES = (
    "akhmetov", "abenov", "baimukhanov", "bekov", "zhumabekov", "zhakupov", "iskakov",
    "kassymov", "kaliyev", "kenzhebekov", "mamyrov", "mukhametov", "nurlanov", "nurpeisov",
    "omarov", "ospanov", "sadykov", "sarsenbayev", "serikbayev", "smagulov", "suleimenov",
    "tokhtarov", "tursunov", "utepov", "yergaliyev", "yessenov", "zhunussov", "amanov",
    "baizhanov", "ibraimov", "karimov", "orazov", "rakhimov", "seitkaliyev", "shaikenov",
    "temirkhanov", "abdrakhmanov", "sultanov", "zhanibekov", "tulegenov", "myrzakhmetov",
    "alimov", "kuanyshev", "yerzhanov", "dauletov", "aitbayev", "baimenov", "yesimov",
    "zhaksylykov", "kozhakhmetov", "ivanov", "petrov", "kuznetsov", "volkov", "smirnov",
    "popov", "sokolov", "lebedev", "novikov", "morozov", "shevchenko", "kim", "pak", "tsoi",
    "li", "khan", "ten", "nam", "bondarenko", "kravchenko",
)  # fmt: skip
INITIALS = "abdegikmnorstuyzl"
FIRST_NAMES = (
    "aigerim", "askar", "dana", "yerlan", "madina", "nurlan", "saule", "timur", "aizhan",
    "daniyar", "gulnara", "marat", "asel", "bauyrzhan", "zhanna", "olga", "sergey", "irina",
    "dmitriy", "natalya", "alexey", "elena", "arman", "dinara", "kairat", "aliya", "yerbol",
    "ainur", "samat", "kamila",
)  # fmt: skip
BIZ_WORDS = (
    "kaz", "astana", "almaty", "trans", "stroy", "servis", "invest", "energo", "tech", "agro",
    "med", "logistic", "kom", "group", "nur", "sapa", "qazaq", "dala", "altyn", "aqsu", "zher",
    "sun", "build", "print", "soft", "consult", "trade", "oil", "metall", "farm",
)  # fmt: skip
FOREIGN_WORDS = (
    "global", "trade", "tech", "supply", "delta", "nova", "prime", "euro", "asia", "silk",
    "group", "logistics", "industrial", "systems", "partner", "metro", "union", "alpha",
)  # fmt: skip
FOREIGN_TLDS = ("com", "com", "com", "ru", "ru", "de", "cn", "net", "org", "tr", "uz", "kg",
                "by", "in", "info", "biz", "it", "fr", "br", "ae")  # fmt: skip
OTHER_GOV = tuple(f"{p}.gov.kz" for p in ("akorda", "egov", "parlam", "primeminister",
                                          "kazpost", "nitec", "sud", "ombudsman"))  # fmt: skip

# Organisation kinds: (share of the world, Pareto scale and cap of its staff with mail,
# chance of a notification robot, of a newsletter, of a monitoring system)
KINDS = {
    "ministry": (0.10, 70.0, 1500, 0.6, 0.5, 0.25),
    "akimat": (0.20, 30.0, 900, 0.4, 0.5, 0.12),
    "department": (0.50, 7.0, 300, 0.15, 0.15, 0.05),
    "company": (0.20, 12.0, 600, 0.6, 0.2, 0.2),
}
STAFF_ALPHA = 1.3
# Partners' mix by organisation kind: gov.kz, .kz businesses, free-mail, foreign
MIX = {
    "ministry": (0.45, 0.12, 0.28, 0.15),
    "akimat": (0.42, 0.13, 0.37, 0.08),
    "department": (0.45, 0.12, 0.37, 0.06),
    "company": (0.2, 0.25, 0.45, 0.1),
}
DEAD = (0.008, 0.025, 0.04, 0.03)  # share of dead mailboxes among partners, by class
# System senders: local parts, messages a working day (range), partner class weights,
# share of never-seen recipients (citizens, applicants) and their class weights
SYSTEM = (
    (("kanc", "edo", "docs"), (5.0, 60.0), (0.85, 0.1, 0.05, 0.0), 0.0),
    (("buh", "bugalteria"), (1.0, 10.0), (0.2, 0.7, 0.05, 0.05), 0.05),
    (("zakup", "goszakup"), (2.0, 20.0), (0.05, 0.85, 0.05, 0.05), 0.1),
    (("hr", "kadry"), (1.0, 8.0), (0.3, 0.1, 0.6, 0.0), 0.4),
    (("info", "priemnaya", "obrasheniya"), (5.0, 50.0), (0.2, 0.1, 0.65, 0.05), 0.6),
    (("press", "smi"), (1.0, 10.0), (0.3, 0.25, 0.4, 0.05), 0.05),
    (("it", "support"), (0.5, 5.0), (0.2, 0.5, 0.1, 0.2), 0.05),
)
NOTIFY_LOCALS = ("noreply", "portal", "egov-notify", "esf-notify", "robot", "no-reply")
NEWSLETTER_LOCALS = ("news", "rassylka", "newsletter", "digest")
MONITOR_LOCALS = ("zabbix", "monitoring", "alerts", "nagios")


def sub_seed(seed: int, *path: str | int) -> int:
    """A stable 64-bit seed for the stream named by `path` under `seed`."""
    text = "\x1f".join(str(part) for part in (seed, *path)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def sub_rng(seed: int, *path: str | int) -> random.Random:
    return random.Random(sub_seed(seed, *path))


def log_uniform(rng: random.Random, low: float, high: float) -> float:
    """A value between low and high, as likely in each decade (both > 0)."""
    return float(low * (high / low) ** rng.random())


@dataclass(eq=False, slots=True)
class Sender:
    """One envelope sender of an organisation and its habits."""

    address: str
    role: str  # person | system | notify | newsletter | monitor | rare
    rate: float  # messages a working day
    book: list[Rcpt]  # contacts, most mailed first
    cum: list[float]  # cumulative weights of `book`
    size_mu: float  # ln of the median message size in bytes
    size_sigma: float
    multi: float = 0.12  # chance of a message to several recipients
    fresh: float = 0.0  # chance of a recipient never mailed before
    fresh_cum: tuple[float, ...] = (0.0, 0.0, 1.0, 1.0)  # its class (cumulative weights)
    since: int = 0  # the day index it starts sending (a new employee)
    server: int = 0  # index of its usual server


@dataclass(eq=False, slots=True)
class Newsletter:
    sender: Sender
    subscribers: list[Rcpt]
    weekday: int  # 0 = Monday
    hour: float  # local hour it starts
    every: int  # weeks between issues
    rate: float  # messages a minute
    batch: int  # recipients a message


@dataclass(eq=False, slots=True)
class Monitor:
    sender: Sender
    target: Rcpt
    period_s: float  # seconds between alerts


@dataclass(eq=False)
class Org:
    index: int
    domain: str
    kind: str
    ips: list[str]
    mix: tuple[float, float, float, float]
    people: list[Sender] = field(default_factory=list)
    system: list[Sender] = field(default_factory=list)
    rare: list[Sender] = field(default_factory=list)  # senders at the second domain
    second_domain: str | None = None
    notify: Sender | None = None
    newsletter: Newsletter | None = None
    monitor: Monitor | None = None
    pool: list[Rcpt] = field(default_factory=list)  # its partners
    report_targets: list[Rcpt] = field(default_factory=list)  # where its reports go
    deadlines: tuple[int, ...] = ()  # days of the month with a reporting deadline
    quarter_end: bool = False  # reports due on the last working day of a quarter
    extra_surge_days: list[int] = field(default_factory=list)  # day indexes (granted)
    greets: bool = False  # sends greetings before public holidays
    autoreply: float = 0.01  # null-sender replies per office message
    outage_rate: float = 0.02  # chance of an outage on a day
    mass_rate: float = 0.0  # chance of a planned mass mailing on a working day

    def known(self) -> set[str]:
        """Every address this organisation mails usually (its partners, lists, books)."""
        seen = {addr for addr, _ in self.pool}
        for s in self.senders():
            seen.update(addr for addr, _ in s.book)
        if self.newsletter:
            seen.update(addr for addr, _ in self.newsletter.subscribers)
        return seen

    def senders(self) -> list[Sender]:
        robots = [self.notify] if self.notify else []
        robots += [x.sender for x in (self.newsletter, self.monitor) if x is not None]
        return [*self.people, *self.system, *self.rare, *robots]


@dataclass(eq=False)
class World:
    seed: int
    orgs: list[Org]
    business: list[str]  # .kz business domains
    foreign: list[str]  # foreign domains
    domains: list[str] = field(default_factory=list)  # the organisations' primary domains


class Names:
    """Addresses of people and things, drawn from one random stream."""

    def __init__(self, rng: random.Random, world: World | None = None) -> None:
        self.rng = rng
        self.world = world

    def person_local(self) -> str:
        r = self.rng
        surname = r.choice(SURNAMES)
        if r.random() < 0.45 and surname[-2:] in ("ov", "ev", "in"):
            surname += "a"
        form = r.random()
        if form < 0.8:
            return f"{r.choice(INITIALS)}.{surname}"
        if form < 0.9:
            return f"{r.choice(INITIALS)}.{r.choice(INITIALS)}.{surname}"
        return f"{surname}.{r.choice(INITIALS)}"

    def free_local(self) -> str:
        r = self.rng
        form = r.random()
        if form < 0.35:
            return f"{r.choice(SURNAMES)}{r.randint(1, 999)}"
        if form < 0.6:
            return f"{r.choice(FIRST_NAMES)}.{r.choice(SURNAMES)}"
        if form < 0.75:
            year = r.randint(70, 99) if r.random() < 0.5 else 2000 + r.randint(0, 12)
            return f"{r.choice(FIRST_NAMES)}_{year}"
        return "".join(r.choices(string.ascii_lowercase + string.digits, k=r.randint(6, 10)))

    def business_domain(self) -> str:
        r = self.rng
        a, b = r.sample(BIZ_WORDS, 2)
        return f"{a}{b}.kz" if r.random() < 0.6 else f"{a}-{b}.kz"

    def foreign_domain(self) -> str:
        r = self.rng
        if r.random() < 0.15:
            return r.choice(FOREIGN_FREE)
        a, b = r.sample(FOREIGN_WORDS, 2)
        return f"{a}{b}.{r.choice(FOREIGN_TLDS)}"

    def address(self, cls: int, own: str = "") -> str:
        """A random address of class `cls` (GOV, KZ, FREE, FOREIGN), not at `own`."""
        r = self.rng
        if cls == GOV:
            domains = self.world.domains if self.world else []
            domain = own
            while domain == own:
                domain = r.choice(domains) if domains and r.random() < 0.85 else r.choice(OTHER_GOV)
            local = (
                self.person_local() if r.random() < 0.8 else r.choice(("kanc", "info", "priemnaya"))
            )
            return f"{local}@{domain}"
        if cls == KZ:
            biz = self.world.business if self.world else []
            domain = r.choice(biz) if biz and r.random() < 0.9 else self.business_domain()
            local = (
                r.choice(("info", "office", "buh", "sales"))
                if r.random() < 0.4
                else self.free_local()
            )
            return f"{local}@{domain}"
        if cls == FREE:
            return f"{self.free_local()}@{r.choices(FREE_MAIL, FREE_WEIGHTS)[0]}"
        foreign = self.world.foreign if self.world else []
        domain = r.choice(foreign) if foreign and r.random() < 0.7 else self.foreign_domain()
        return f"{self.free_local()}@{domain}"

    def rcpt(self, cls: int, dead: float, own: str = "") -> Rcpt:
        """A random recipient of class `cls`; dead (UNKNOWN or REFUSED) with chance `dead`."""
        addr = self.address(cls, own)
        if self.rng.random() < dead:
            return addr, UNKNOWN if self.rng.random() < 0.85 else REFUSED
        return addr, cls


def cumulative(weights: list[float]) -> list[float]:
    return list(itertools.accumulate(weights))


def zipf_book(rng: random.Random, book: list[Rcpt]) -> list[float]:
    """Cumulative weights of a contact book: the first contacts get most of the mail."""
    s = rng.uniform(0.6, 1.2)
    return cumulative([1.0 / (rank + 1) ** s for rank in range(len(book))])


def _domains(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """n unique (domain, kind) pairs."""
    used: dict[str, None] = {}
    kinds = list(KINDS)
    shares = [KINDS[k][0] for k in kinds]
    out: list[tuple[str, str]] = []
    while len(out) < n:
        kind = rng.choices(kinds, shares)[0]
        for attempt in range(30):
            if kind == "ministry":
                name = f"{rng.choice(MINISTRIES)}.gov.kz"
            elif kind == "akimat":
                name = f"{rng.choice(PLACES)}.gov.kz"
            elif kind == "department":
                name = f"{rng.choice(DEPARTMENTS)}-{rng.choice(PLACES)}.gov.kz"
            else:
                name = f"{rng.choice(COMPANIES)}-{rng.choice(PLACES)}.kz"
            if attempt > 20:  # the names of a kind run out: number them
                name = f"{name.split('.')[0]}{rng.randint(2, 99)}.{name.split('.', 1)[1]}"
            if name not in used:
                used[name] = None
                out.append((name, kind))
                break
    return out


def _ips(rng: random.Random, taken: set[str]) -> list[str]:
    count = rng.choices((1, 2, 3), (70, 22, 8))[0]
    ips: list[str] = []
    while len(ips) < count:
        ip = f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        if ip not in taken:
            taken.add(ip)
            ips.append(ip)
    return ips


def build_world(seed: int, connections: int, days: int) -> World:
    """The world of `connections` organisations over a period of `days` days."""
    rng = sub_rng(seed, "world")
    names = Names(rng)
    business = list(dict.fromkeys(names.business_domain() for _ in range(400)))
    foreign = list(dict.fromkeys(names.foreign_domain() for _ in range(300)))
    world = World(seed, [], business, foreign)
    taken: set[str] = set()
    for index, (domain, kind) in enumerate(_domains(sub_rng(seed, "domains"), connections)):
        ips = _ips(sub_rng(seed, "ips", index), taken)
        world.orgs.append(Org(index, domain, kind, ips, MIX[kind]))
        world.domains.append(domain)
    for org in world.orgs:
        _populate(world, org, sub_rng(seed, "org", org.index), days)
    return world


def _populate(world: World, org: Org, rng: random.Random, days: int) -> None:
    """Fill one organisation: partners, senders and their books, habits."""
    names = Names(rng, world)
    _, scale, cap, p_notify, p_news, p_monitor = KINDS[org.kind]
    staff = min(cap, int(scale * rng.paretovariate(STAFF_ALPHA)) + rng.randint(2, 6))
    mix = tuple(w * rng.uniform(0.6, 1.4) for w in org.mix)
    total = sum(mix)
    org.mix = (mix[0] / total, mix[1] / total, mix[2] / total, mix[3] / total)
    classes = (GOV, KZ, FREE, FOREIGN)
    size = min(12000, 60 + 8 * staff)
    pool_by_class: list[list[Rcpt]] = []
    for cls, share in zip(classes, org.mix, strict=True):
        n = max(3, int(size * share))
        pool_by_class.append([names.rcpt(cls, DEAD[cls], org.domain) for _ in range(n)])
    org.pool = [r for group in pool_by_class for r in group]
    superiors = [d for d in world.domains if d != org.domain] or list(OTHER_GOV)
    targets = [
        (f"{rng.choice(('otchet', 'kanc', 'stat', 'monitoring'))}@{rng.choice(superiors)}", GOV)
        for _ in range(rng.randint(2, 6))
    ]
    org.report_targets = list(dict.fromkeys(targets))

    def book(n: int, weights: tuple[float, ...]) -> tuple[list[Rcpt], list[float]]:
        counts = [0, 0, 0, 0]
        for cls in rng.choices(classes, weights, k=n):
            counts[cls] += 1
        contacts: list[Rcpt] = []
        for cls, k in enumerate(counts):
            group = pool_by_class[cls]
            contacts += rng.sample(group, min(k, len(group)))
        rng.shuffle(contacts)
        return contacts, zipf_book(rng, contacts)

    used: dict[str, None] = {}
    for _ in range(staff):
        local = names.person_local()
        while local in used:
            local = names.person_local()
        used[local] = None
        rate = rng.lognormvariate(1.85, 0.9)  # median 6.4 messages a working day
        mine = tuple(w * rng.uniform(0.5, 1.5) for w in org.mix)
        contacts, cum = book(rng.randint(8, 40) + int(4 * rate), mine)
        joins = rng.random() < 0.015 * days / 30 and days > 1
        org.people.append(
            Sender(
                f"{local}@{org.domain}",
                "person",
                rate,
                contacts,
                cum,
                size_mu=rng.gauss(10.55, 0.3),
                size_sigma=rng.uniform(1.0, 1.4),
                multi=rng.uniform(0.06, 0.25),
                fresh=rng.uniform(0.0, 0.06),
                fresh_cum=tuple(cumulative(list(mine))),
                since=rng.randint(1, days - 1) if joins else 0,
                server=rng.randrange(min(2, len(org.ips))),
            )
        )
    systems = rng.sample(SYSTEM, rng.randint(1, min(len(SYSTEM), 2 + staff // 15)))
    for locals_, (low, high), weights, fresh in systems:
        contacts, cum = book(rng.randint(20, 150), weights)
        org.system.append(
            Sender(
                f"{rng.choice(locals_)}@{org.domain}",
                "system",
                log_uniform(rng, low, high) * (1 + staff / 200),
                contacts,
                cum,
                size_mu=rng.gauss(10.8, 0.4),
                size_sigma=rng.uniform(0.8, 1.2),
                multi=rng.uniform(0.02, 0.15),
                fresh=fresh,
                fresh_cum=tuple(cumulative(list(weights))),
                server=len(org.ips) - 1,
            )
        )
    if rng.random() < p_notify:
        citizens = [names.rcpt(FREE if rng.random() < 0.85 else KZ, 0.05) for _ in range(300)]
        org.notify = Sender(
            f"{rng.choice(NOTIFY_LOCALS)}@{org.domain}",
            "notify",
            min(15000.0, 30 * rng.paretovariate(1.1) * (1 + staff / 100)),
            citizens,
            zipf_book(rng, citizens),
            size_mu=rng.gauss(9.2, 0.3),
            size_sigma=0.4,
            multi=0.0,
            fresh=rng.uniform(0.6, 0.95),
            fresh_cum=(0.0, 0.1, 1.0, 1.0),
            server=len(org.ips) - 1,
        )
    if rng.random() < p_news:
        grant_newsletter(world, org, rng)
    if rng.random() < p_monitor:
        target = (
            names.rcpt(KZ, 0.0)
            if rng.random() < 0.6
            else (f"{names.free_local()}@{rng.choice(FREE_MAIL[:2])}", FREE)
        )
        org.monitor = Monitor(
            Sender(f"{rng.choice(MONITOR_LOCALS)}@{org.domain}", "monitor", 0.0, [target],
                   [1.0], size_mu=8.3, size_sigma=0.2, server=len(org.ips) - 1),
            target,
            rng.uniform(180.0, 900.0),
        )  # fmt: skip
    if rng.random() < 0.25:
        grant_second_domain(world, org, rng)
    org.deadlines = tuple(sorted(rng.sample((5, 10, 15, 20, 25), rng.randint(1, 3))))
    org.quarter_end = rng.random() < 0.6
    org.greets = rng.random() < 0.5
    org.autoreply = rng.uniform(0.003, 0.02)
    org.outage_rate = rng.uniform(0.005, 0.04)
    org.mass_rate = 0.01 if (org.notify or org.system) and rng.random() < 0.5 else 0.0


def grant_newsletter(world: World, org: Org, rng: random.Random) -> None:
    """Give `org` a newsletter: a sender, its subscribers and its schedule."""
    names = Names(rng, world)
    n = int(min(20000.0, 100 * rng.paretovariate(1.0)))
    dead = rng.uniform(0.02, 0.08)
    subscribers = [
        names.rcpt(rng.choices((GOV, KZ, FREE, FOREIGN), (10, 20, 62, 8))[0], dead, org.domain)
        for _ in range(n)
    ]
    sender = Sender(
        f"{rng.choice(NEWSLETTER_LOCALS)}@{org.domain}",
        "newsletter",
        0.0,
        subscribers,
        cumulative([1.0] * len(subscribers)),
        size_mu=rng.uniform(10.3, 12.9),  # 30-400 KB
        size_sigma=0.03,
        server=len(org.ips) - 1,
    )
    org.newsletter = Newsletter(
        sender,
        subscribers,
        weekday=rng.randrange(5),
        hour=rng.uniform(9.5, 16.0),
        every=rng.choice((1, 1, 2, 4)),
        rate=log_uniform(rng, 20.0, 300.0),
        batch=1 if rng.random() < 0.7 else rng.randint(10, 50),
    )


def grant_second_domain(world: World, org: Org, rng: random.Random) -> None:
    """Give `org` a second, rarely used sender domain and one to three senders there."""
    names = Names(rng, world)
    base = org.domain.split(".")[0]
    org.second_domain = rng.choice(
        (f"{base}.kz", f"e-{base}.kz", f"{base}-online.kz", f"old-{base}.kz")
    )
    for _ in range(rng.randint(1, 3)):
        contacts = rng.sample(org.pool, min(len(org.pool), rng.randint(5, 25)))
        org.rare.append(
            Sender(
                f"{names.person_local()}@{org.second_domain}",
                "rare",
                rng.uniform(0.1, 1.5),
                contacts,
                zipf_book(rng, contacts),
                size_mu=rng.gauss(10.5, 0.3),
                size_sigma=1.1,
                server=0,
            )
        )
