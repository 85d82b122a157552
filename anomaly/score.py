"""One score of how abnormal a connection's traffic is now: its findings' surprises, summed.

`assess(features, baseline, ts, backlog)` measures each finding as a surprise
(anomaly.surprise: decades of improbability) against the connection's own
usual and returns an `Assessment`: the total and the findings that weigh,
heaviest first, each with a sentence for a person. The findings:

- volume: recipients in 5 min against the usual of this hour of the week
  (baseline.py), or a rise above the usual band that has lasted (a CUSUM of
  the 5-minute blocks, anomaly.drift; only once the connection's history holds
  a whole day, `DRIFT_AFTER_S`: before, its band has seen the night and not
  the office opening), whichever is larger; a connection with
  little history against `COLD_MEAN`. Volume
  alone is never abuse (a newsletter, a reporting-day surge): it weighs at most
  `VOLUME_CAP`, below any threshold, and counts only beside another finding;
- new recipients: addresses this connection never mailed, against what its
  senders usually reach that is new (anomaly.recipients), in 5 and 60 min;
- strangers: several of its people with a history each reaching clearly more
  strangers than usual at once (anomaly.strangers: mailboxes in other hands,
  spam spread thin over many of them), in 5 and 60 min; or one of them, in at
  least `LONE_MESSAGES` messages (a phisher writes a few at a time, again and
  again), weighing at most `LONE_CAP` and, like new recipients, corroborating
  nothing (one mailbox's mailing to people it never wrote to is a mailing),
  unless `PARTNER_SHARE` of them are new people at organisations it already
  mails, not free-mail (anomaly.recipients): guessed colleagues, the way
  lateral phishing spreads (then "one mailbox to partners' people");
- unknown users (550) and spam or policy refusals (554) among the delivery
  outcomes, null-sender messages (backscatter) and messages from senders
  never seen before among the messages, recipients new at a foreign domain
  (not .kz) the connection never mailed among the recipients (spam to a
  bought list; the recipients of one message count as at most `PER_MESSAGE`
  trials, as they were chosen together; weighed by how complete the memory
  of domains is, as new recipients are; the outcomes of a message to a list
  (features.LIST_RCPTS or more) are alike too, a stale list's dead addresses
  all bounce: they count as fewer trials, by the design effect 1 + (m - 1) x
  `SAME_MESSAGE`, m the outcomes of a message on average over the outcomes,
  so one circular to an old list is not a dictionary attack; a person's few
  recipients are as many choices), feedback-loop complaints (a live
  node's, ugem.core.services.complaints) against the messages, as a share of
  them (they come hours late: the share is a proxy, and a few weigh; at most
  `COMPLAINT_CAP`, as a report is its sender's word): each a
  share against the connection's own share before the last hour (with a
  floor), in 5 and 60 min;
- new sender domains: messages from senders at domains the connection never
  sent from (after the warm-up, anomaly.warmup) to recipients it never mailed, counted
  against its own rate of them (at least `SENDER_DOMAIN_RATE` an hour), in 5
  and 60 min: a connected server sends as its own domains, so several new ones
  in an hour writing to strangers are forged senders (an open relay, a spam
  run); a mailbox forwarding its mail keeps its senders' domains but writes to
  the one address it forwards to. At most `SENDER_DOMAIN_CAP`: alone below any
  threshold, as volume is, for what nobody has seen yet;
- new senders to strangers: senders never seen (anomaly.sender_key: a list's
  tagged senders are one) whose first message reached recipients the
  connection never mailed, counted against its own rate of them (at least
  `STRANGER_SENDER_RATE` an hour), in 5 and 60 min: a new colleague or a new
  robot now and then; an open relay's forged senders, one a message, many an
  hour. At most `STRANGER_SENDER_CAP`, alone below any threshold;
- a mail loop: a sender→recipient pair repeated in the 5-minute block, or its
  messages growing in a row (anomaly.loops).

A backlog after an outage (detector.py) is not abuse: while it is ARRIVING
neither volume nor a repeated pair counts (growing messages do), while it is
IN_WINDOW volume does not. Each window's finding is the larger of its two windows. The weights and
thresholds are set on the tuning traces (anomaly.protocol), never on the
held-out ones. Pure computation; nothing raises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from anomaly import surprise
from anomaly.baseline import Baseline
from anomaly.drift import SPREAD_FLOOR, SPREAD_SHARE, Drift
from anomaly.features import Features, Window
from anomaly.strangers import Turned

NO_BACKLOG, ARRIVING, IN_WINDOW = range(3)
(
    VOLUME,
    NOVEL,
    STRANGERS,
    LONE,
    LATERAL,
    INVALID_RCPT,
    REFUSED,
    NULL_SENDER,
    NEW_SENDERS,
    NEW_DOMAINS,
    COMPLAINTS,
    SENDER_DOMAINS,
    STRANGER_SENDERS,
    LOOP,
) = (
    "volume",
    "new recipients",
    "strangers",
    "one mailbox to strangers",
    "one mailbox to partners' people",
    "unknown users",
    "refused",
    "null sender",
    "new senders",
    "new foreign domains",
    "complaints",
    "new sender domains",
    "new senders to strangers",
    "loop",
)
_UNCORROBORATED = (VOLUME, NOVEL, LONE)  # findings that back no suspension by themselves
VOLUME_FLOOR = 20  # recipients in 5 min below which volume is never abnormal
COLD_MEAN = 20.0  # usual recipients in 5 min assumed of a connection with little history
VOLUME_CAP = 4.0  # the most volume alone can weigh
NOVEL_K = 10.0  # overdispersion of new recipients: variance = mu + mu²/NOVEL_K
NOVEL_SLACK = 2.0  # new recipients any sender may reach beyond its usual share
SEVERAL = 2  # people turned to strangers at once before it is a finding...
LONE_MESSAGES = 10  # ...or one person's messages that reached strangers...
LONE_CAP = 3.0  # ...weighing at most this much...
PARTNER_SHARE = 0.5  # ...and corroborating when this share of its strangers are at partners
EFFECTIVE = 40.0  # trials of evidence a share counts at most
PAIR_MEAN, PAIR_DISPERSION = 3.0, 2.0  # usual top sender→recipient pair in 5 min
# (floor of the usual share, least hits) of each share finding
INVALID = (0.02, 4)
POLICY = (0.01, 4)
NULL = (0.03, 4)
NEW_SENDER = (0.02, 3)
NEW_DOMAIN = (0.1, 4)  # people write to a new organisation abroad now and then
COMPLAINT = (0.002, 2)  # mailbox providers' feedback loops: a few per thousand is bad
COMPLAINT_CAP = 3.0  # a report is its sender's word: complaints alone never suspend
_SHARES = (  # (name, hits, trials, rule) of each share finding, as Window's fields
    (INVALID_RCPT, "invalid", "outcomes", INVALID),
    (REFUSED, "policy", "outcomes", POLICY),
    (NULL_SENDER, "null", "msgs", NULL),
    (NEW_SENDERS, "new_senders", "msgs", NEW_SENDER),
    (NEW_DOMAINS, "new_domains", "rcpts", NEW_DOMAIN),
    (COMPLAINTS, "complaints", "msgs", COMPLAINT),
)
ABOVE = 2.0  # a share counts from this many times its usual (below, < 0.15 decade)
PER_MESSAGE = 3.0  # trials of evidence one message's recipients count at most
SAME_MESSAGE = 0.1  # how alike the outcomes of one message are (intra-class correlation)
LEAST_NEW = 8  # new recipients beyond the expected before novelty is weighed
LEAST_PAIR = 10  # a pair's messages before a loop is weighed
LEAST_RUN = 6  # growing messages in a row before they are weighed (6! = 720)
# A connected server sends as its own domains: one it never sent from is rare (a new
# second domain, a forwarded message), several in an hour are forged senders.
SENDER_DOMAIN_RATE = 0.05  # new sender domains an hour assumed at least (once in 20 h)
LEAST_SENDER_DOMAINS = 3  # new sender domains in a window before they are weighed
SENDER_DOMAIN_CAP = 6.0  # the most they weigh: alone below any threshold, as volume
# A sender never seen is a new colleague or a new robot, now and then; many in an hour,
# each writing to strangers at once, are made up (an open relay's forged senders).
STRANGER_SENDER_RATE = 0.2  # senders never seen writing to strangers an hour, at least
LEAST_STRANGER_SENDERS = 3  # of them in a window before they are weighed
STRANGER_SENDER_CAP = 6.0  # the most they weigh: alone below any threshold
HOUR_S = 3600.0
DRIFT_AFTER_S = 86_400.0  # a rise counts once the usual band has seen a whole day


_SAYS = {
    INVALID_RCPT: "bounced as unknown users",
    REFUSED: "refused as spam or by policy",
    NULL_SENDER: "from the null sender (bounces)",
    NEW_SENDERS: "from senders never seen",
    NEW_DOMAINS: "new, at a foreign domain never mailed before",
    COMPLAINTS: "complained of by their recipients (feedback loops)",
}
_UNITS = {"outcomes": "deliveries", "msgs": "messages", "rcpts": "recipients"}


class Finding(NamedTuple):
    weight: float  # the surprise, in decades
    name: str  # VOLUME, NOVEL, ...
    what: str  # for a person


class Assessment(NamedTuple):
    score: float
    findings: tuple[Finding, ...]  # heaviest first, those that weigh anything

    @property
    def corroboration(self) -> float:
        """The weight of the findings that are neither volume nor new recipients (of the
        connection's or of one mailbox): a bulk mailing to citizens never mailed is both,
        and no abuse without more."""
        return sum(f.weight for f in self.findings if f.name not in _UNCORROBORATED)

    def reason(self, most: int = 3) -> str:
        """The `most` heaviest findings, for a person, and the heaviest that corroborates when
        it is not among them (why a high score of volume and new recipients was acted on)."""
        shown = list(self.findings[:most])
        backing = [f for f in self.findings if f.name not in _UNCORROBORATED]
        if backing and backing[0] not in shown:
            shown.append(backing[0])
        return "; ".join(f.what for f in shown)


def could_weigh(features: Features) -> bool:
    """Whether any finding but volume could weigh: without one the score stays below
    VOLUME_CAP. Each count of a shorter window is at most the last hour's."""
    hour = features.window(60)
    if (
        hour.new_rcpts >= hour.expected_new + LEAST_NEW
        or features.top_pair_reaches(LEAST_PAIR)
        or features.loops.longest >= LEAST_RUN
        or any(getattr(hour, rule.hits) >= rule.least for rule in _RARE)
    ):
        return True
    # each count of the 5-minute window is at most the hour's: most checks end here, before
    # the 5-minute window and the usual shares are computed
    shares = [share for share in _SHARES if getattr(hour, share[1]) >= share[3][1]]
    if not shares:
        return False
    five, before = features.window(5), features.before_hour()
    return any(_above(five, hour, before, *share[1:]) for share in shares)


def _usual(before: Window, hits: str, of: str, floor: float) -> float:
    """The connection's share of `hits` among `of` before the last hour, at least `floor`."""
    past_trials = getattr(before, of)
    return max(floor, getattr(before, hits) / past_trials if past_trials else 0.0)


def _above(
    w5: Window, w60: Window, before: Window, hits: str, of: str, rule: tuple[float, int]
) -> bool:
    """Whether a share finding could weigh: at least its least hits in a window, and more
    than ABOVE times its usual share there."""
    floor, least = rule
    if getattr(w60, hits) < least:  # each count of w5 is at most w60's
        return False
    usual = ABOVE * _usual(before, hits, of, floor)
    return any(
        getattr(w, hits) >= least and getattr(w, hits) > usual * getattr(w, of) for w in (w5, w60)
    )


def assess(
    features: Features,
    baseline: Baseline,
    ts: float,
    backlog: int = NO_BACKLOG,
    drift: Drift | None = None,
) -> Assessment:
    w5, w60, before = features.window(5), features.window(60), features.before_hour()
    maturity = features.recipients.maturity(ts)
    warm = features.recipients.warm
    found = [
        _novel(w5, w60, maturity) if warm else None,
        _strangers(features, maturity) if warm else None,
        *(_share(features, w5, w60, before, *share) for share in _SHARES),
        *(_rare(w5, w60, before, features.warm_ts, ts, rule) for rule in _RARE),
        _loop(features, ts, backlog),
    ]
    if maturity < 1.0:  # the domains mailed once a month are not all remembered yet
        found = [_young(f, maturity) for f in found]
    findings = [_capped(f) for f in found if f is not None and f.weight > 0.0]
    if findings and backlog == NO_BACKLOG:
        volume = _volume(
            w5, baseline, ts, drift if ts - features.first_ts >= DRIFT_AFTER_S else None
        )
        if volume is not None:
            findings.append(volume)
    findings.sort(reverse=True)
    return Assessment(sum(f.weight for f in findings), tuple(findings))


def _volume(w5: Window, baseline: Baseline, ts: float, drift: Drift | None) -> Finding | None:
    """The larger of two surprises, at most VOLUME_CAP: the last 5 minutes against the usual,
    and a rise that has lasted (anomaly.drift: a CUSUM of the 5-minute blocks)."""
    if w5.rcpts < VOLUME_FLOOR:
        return None
    mean, spread, warm = baseline.expected(ts)
    if not warm:
        mean, spread = COLD_MEAN, COLD_MEAN
    # The spread has a floor: a connection that never varied must not alarm on a few more.
    spread = max(spread, SPREAD_FLOOR, SPREAD_SHARE * mean)
    burst = surprise.count(w5.rcpts, mean, spread * spread / max(mean, 1.0))
    rise = drift.decades() if drift is not None and warm else 0.0
    weight = min(VOLUME_CAP, max(burst, rise))
    if weight <= 0.0:
        return None
    usual = f"a usual {mean:.0f} ± {spread:.0f} at this hour" if warm else "little history"
    what = f"{w5.rcpts} recipients in 5 min ({w5.msgs} messages) against {usual}"
    if drift is not None and rise > burst:
        what += f", above its usual band for {5 * drift.blocks} min"
    return Finding(weight, VOLUME, what)


def _capped(finding: Finding) -> Finding:
    """Complaints weigh at most COMPLAINT_CAP (anyone may send a report)."""
    if finding.name == COMPLAINTS and finding.weight > COMPLAINT_CAP:
        return finding._replace(weight=COMPLAINT_CAP)
    return finding


def _young(finding: Finding | None, maturity: float) -> Finding | None:
    """A new-domains finding weighed by how complete the memory is (as new recipients are)."""
    if finding is None or finding.name != NEW_DOMAINS:
        return finding
    return finding._replace(weight=maturity * finding.weight)


def _heavier(
    w5: Window, w60: Window, weigh: Callable[[Window], float | None]
) -> tuple[float, Window] | None:
    """(weight, window) of the window that weighs more (`weigh`: None where it cannot)."""
    best: tuple[float, Window] | None = None
    for w in (w5, w60):
        weight = weigh(w)
        if weight is not None and (best is None or weight > best[0]):
            best = weight, w
    return best


def _novel(w5: Window, w60: Window, maturity: float) -> Finding | None:

    def weigh(w: Window) -> float | None:
        if w.new_rcpts < w.expected_new + LEAST_NEW:
            return None
        mu = w.expected_new + NOVEL_SLACK
        return maturity * surprise.count(w.new_rcpts, mu, 1.0 + mu / NOVEL_K)

    best = _heavier(w5, w60, weigh)
    if best is None:
        return None
    weight, w = best
    return Finding(
        weight,
        NOVEL,
        f"{w.new_rcpts} of {w.rcpts} recipients in {w.minutes} min never mailed before"
        f" (its senders usually reach {w.expected_new:.0f} new)",
    )


def _strangers(features: Features, maturity: float) -> Finding | None:
    """People turned to strangers (anomaly.strangers), in 5 or 60 min: several at once, or
    one whose strangers came message after message (`_lone`)."""
    best: tuple[float, int, Turned] | None = None
    for minutes in (5, 60):
        turned = features.turned(minutes)
        weight = turned.decades if turned.senders >= SEVERAL else _lone(turned)
        if weight > 0.0 and (best is None or weight > best[0]):
            best = weight, minutes, turned
    if best is None:
        return None
    weight, minutes, turned = best
    beyond = f"beyond their usual in {minutes} min ({turned.strangers:.0f} beyond it in all)"
    if turned.senders >= SEVERAL:
        name = STRANGERS
        what = f"{turned.senders} of its people with a history each mailed strangers {beyond}"
    else:
        name = LATERAL if _lateral(turned) else LONE
        what = f"one of its people with a history mailed, in {turned.messages:.0f} messages,"
        if name == LATERAL:
            what += f" new people at its partner organisations ({turned.partners:.0f})"
        else:
            what += " strangers"
        what += f" {beyond}"
    return Finding(maturity * weight, name, what)


def _lone(turned: Turned) -> float:
    """One person's turn to strangers, weighed when it came in at least LONE_MESSAGES
    messages (a phisher in the mailbox writes a few at a time, again and again; one
    circular to many is one message), at most LONE_CAP: alone below any threshold."""
    if turned.senders != 1 or turned.messages < LONE_MESSAGES:
        return 0.0
    return min(turned.decades, LONE_CAP)


def _lateral(turned: Turned) -> bool:
    """Whether one person's strangers are mostly new people at partner organisations
    (PARTNER_SHARE of them): guessed colleagues, a phisher's way along, rather than the
    citizens or new organisations of a mailing."""
    return turned.partners >= PARTNER_SHARE * turned.new


def _share(
    features: Features,
    w5: Window,
    w60: Window,
    before: Window,
    name: str,
    hits: str,
    of: str,
    rule: tuple[float, int],
) -> Finding | None:
    floor, least = rule
    if getattr(w60, hits) < least:  # each count of w5 is at most w60's
        return None
    usual = _usual(before, hits, of, floor)
    best: tuple[float, Window, int, int] | None = None
    for w in (w5, w60):
        k, n = getattr(w, hits), getattr(w, of)
        if k < least or k <= ABOVE * usual * n:
            continue
        weight = surprise.share(k, n, usual, _effective(features, w, of))
        if best is None or weight > best[0]:
            best = weight, w, k, n
    if best is None:
        return None
    weight, w, k, n = best
    return Finding(
        weight,
        name,
        f"{k} of {n} {_UNITS[of]} in {w.minutes} min {_SAYS[name]} (usually {100 * usual:.1f} %)",
    )


def _effective(features: Features, w: Window, of: str) -> float:
    """The trials of evidence the window's `of` count at most: not all of them where
    some were one decision."""
    if of == "rcpts":  # the recipients of one message were chosen together
        return min(EFFECTIVE, PER_MESSAGE * w.msgs)
    if of == "outcomes" and w.outcomes:  # one message's list: its dead addresses all bounce
        squares, mapped = features.outcome_messages(w.minutes)
        per_message = (squares + w.outcomes - mapped) / w.outcomes  # the others alone: 1 each
        return min(EFFECTIVE, w.outcomes / (1.0 + (per_message - 1.0) * SAME_MESSAGE))
    return EFFECTIVE


class _Rare(NamedTuple):
    """A count finding against the connection's own rate of it (`_rare`)."""

    name: str
    hits: str  # Window's field
    rate: float  # an hour, assumed at least
    least: int  # in a window before it is weighed
    cap: float  # the most it weighs
    says: str  # what was counted, for a person


_RARE = (
    _Rare(
        SENDER_DOMAINS,
        "new_sender_domains",
        SENDER_DOMAIN_RATE,
        LEAST_SENDER_DOMAINS,
        SENDER_DOMAIN_CAP,
        "from senders at domains it never sent from, to strangers",
    ),
    _Rare(
        STRANGER_SENDERS,
        "new_sender_strangers",
        STRANGER_SENDER_RATE,
        LEAST_STRANGER_SENDERS,
        STRANGER_SENDER_CAP,
        "were the first of a sender never seen, to strangers",
    ),
)


def _rare(
    w5: Window, w60: Window, before: Window, warm_ts: float, ts: float, rule: _Rare
) -> Finding | None:
    """Messages of a kind a connection seldom sends, counted against its own rate of them
    before the last hour (at least `rule.rate` an hour), in 5 and 60 min, at most
    `rule.cap`: forged senders (an open relay, a spam run) at domains it never sent from
    (SENDER_DOMAINS), or senders never seen writing to strangers (STRANGER_SENDERS)."""
    if getattr(w60, rule.hits) < rule.least:
        return None
    hours = (ts - warm_ts) / HOUR_S - 1.0  # counted before the last hour
    own = getattr(before, rule.hits) / hours if hours > 1.0 else 0.0
    rate = max(rule.rate, own)

    def weigh(w: Window) -> float | None:
        k = getattr(w, rule.hits)
        return None if k < rule.least else surprise.count(k, rate * w.minutes / 60.0)

    best = _heavier(w5, w60, weigh)
    if best is None:
        return None
    weight, w = best
    return Finding(
        min(rule.cap, weight),
        rule.name,
        f"{getattr(w, rule.hits)} of {w.msgs} messages in {w.minutes} min {rule.says}"
        f" (usually {rate:.2f} an hour)",
    )


def _loop(features: Features, ts: float, backlog: int) -> Finding | None:
    """The larger of two surprises: one pair repeating in the 5-minute block (not while a
    backlog is ARRIVING: queued alerts repeat one pair), and one pair's messages growing
    in a row (anomaly.loops: a backlog's do not)."""
    repeated = 0.0
    if backlog != ARRIVING and features.top_pair_reaches(LEAST_PAIR):
        top = features.top_pair
        repeated = surprise.count(top, PAIR_MEAN, PAIR_DISPERSION)
    growing = features.loops.surprise(ts)
    if growing > repeated:
        run = features.loops.run(ts)
        what = f"one sender's messages to one recipient grew {run} times in a row (a mail loop?)"
        return Finding(growing, LOOP, what)
    if repeated <= 0.0:
        return None
    what = f"one sender sent the same recipient {features.top_pair} times in 5 min (a mail loop?)"
    return Finding(repeated, LOOP, what)
