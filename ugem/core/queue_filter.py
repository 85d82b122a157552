"""Which queued messages an operator means: a filter by state, origin, envelope and age.

`Criteria` is the filter as an operator gives it (`ugem queue list|summary|hold|...`
options, the admin API's query or body): a state, an origin connection, a sender,
a recipient, a recipient's domain, and ages as durations (`older_than`,
`newer_than`). `Criteria.at(now)` checks it and gives the `MailFilter` the spools
select by (absolute times, lower-cased addresses); the same filter serves the
list, its count, the summary and the bulk actions. Matching: every field given
must match (none given: every message). A sender or recipient is an address
(any case, angle brackets allowed) or `@domain` for anyone at that domain; the
sender `<>` is the null sender (bounces). `domain` matches a recipient still to
deliver (`rcpts`, not those already delivered). An age counts from when the
message was received (`older_than=2h`: received 2 hours ago or earlier).

Durations (`parse_duration`): a number and a unit, `s`, `m`, `h`, `d` or `w`,
several in a row (`30m`, `2h`, `3d`, `1h30m`), or a bare number of seconds
(`3600`). How it fails: a field that is not valid is a `UsageError` naming it
(`older_than: '3x' is not a duration; ...`), which the CLI renames to its option.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace

from ugem.core.errors import UsageError

STATES = ("active", "deferred", "held")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}  # seconds per unit
MAX_DURATION = 100 * 365 * 86400.0  # a century: longer is a typing error
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
DURATION_HELP = "a duration: 30m, 2h, 3d, 1h30m (units s m h d w), or seconds"


@dataclass(frozen=True)
class MailFilter:
    """What the spools select by (None: any); addresses and domains are lower-cased."""

    states: tuple[str, ...] | None = None
    connection: str | None = None  # "" is mail from the internet
    sender: str | None = None  # an address, "@domain", or "" for the null sender
    recipient: str | None = None  # an address or "@domain"
    domain: str | None = None  # a recipient's domain
    received_by: float | None = None  # received at or before this time
    received_after: float | None = None  # received after this time

    def within(self, states: tuple[str, ...]) -> MailFilter:
        """This filter narrowed to `states` (what an action fits)."""
        mine = states if self.states is None else tuple(s for s in self.states if s in states)
        return replace(self, states=mine)


@dataclass(frozen=True)
class Criteria:
    """A filter as an operator gives it; `at(now)` checks it and makes the `MailFilter`."""

    state: str | None = None
    connection: str | None = None
    sender: str | None = None
    recipient: str | None = None
    domain: str | None = None
    older_than: str | None = None  # a duration (`parse_duration`)
    newer_than: str | None = None

    def given(self) -> dict[str, str]:
        """The fields given, by name (for the audit log); empty: every message."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}

    def describe(self) -> str:
        """The filter in one line, `domain=mail.ru older_than=2h`, or `all`."""
        return " ".join(f"{k}={v}" for k, v in self.given().items()) or "all"

    def at(self, now: float) -> MailFilter:
        """The spools' filter for this one at time `now`; a `UsageError` naming a bad field."""
        if self.state is not None and self.state not in STATES:
            raise UsageError(f"state: {self.state!r} is not one of {', '.join(STATES)}")
        older = None if self.older_than is None else parse_duration(self.older_than, "older_than")
        newer = None if self.newer_than is None else parse_duration(self.newer_than, "newer_than")
        return MailFilter(
            states=None if self.state is None else (self.state,),
            connection=None if self.connection is None else self.connection.strip(),
            sender=None if self.sender is None else _address(self.sender, "sender"),
            recipient=None if self.recipient is None else _address(self.recipient, "recipient"),
            domain=None if self.domain is None else _domain(self.domain, "domain"),
            received_by=None if older is None else now - older,
            received_after=None if newer is None else now - newer,
        )


def parse_duration(text: str, name: str) -> float:
    """Seconds in `text` (`30m`, `2h`, `1h30m`, `3600`); a `UsageError` naming `name`."""
    given = text.strip().lower()
    if _NUMBER.fullmatch(given):
        seconds = float(given)
    elif _DURATION.fullmatch(given):
        seconds = sum(float(n) * UNITS[unit] for n, unit in _PART.findall(given))
    else:
        raise UsageError(f"{name}: {text[:40]!r} is not a duration; expected {DURATION_HELP}")
    if not math.isfinite(seconds) or seconds > MAX_DURATION:
        raise UsageError(f"{name}: {text[:40]!r} is too long; at most 36500d")
    return seconds


def _address(text: str, name: str) -> str:
    """An address (brackets dropped), "@domain", or "" for `<>`, lower-cased."""
    given = text.strip()
    if given == "<>" and name == "sender":
        return ""
    address = given.removeprefix("<").removesuffix(">").strip().lower()
    if address.startswith("@"):
        return "@" + _domain(address, name)
    local, at, domain = address.rpartition("@")
    if not (local and at and domain) or any(c.isspace() for c in address):
        raise UsageError(
            f"{name}: {text[:80]!r} is not an address; expected user@domain, "
            "@domain for anyone there" + (", or <> for bounces" if name == "sender" else "")
        )
    return address


def _domain(text: str, name: str) -> str:
    domain = text.strip().removeprefix("@").rstrip(".").lower()
    if not domain or "@" in domain or any(c.isspace() for c in domain):
        raise UsageError(f"{name}: {text[:80]!r} is not a domain; expected one such as mail.kz")
    return domain
