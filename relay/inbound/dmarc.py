"""DMARC (RFC 7489) for mail from the internet: author domain, policy record, alignment, verdict.

- `author_of(header)`: the RFC5322.From domain. One From field holding
  one address gives its domain. No From field, or no address with a valid
  domain in it, gives none: there is no identifier to evaluate, so the verdict
  is dmarc=none (RFC 7489 11.2). Several From fields, or several addresses in
  one, are marked `several`: the verdict is dmarc=permerror, and
  `relay.inbound.checks` treats it like a failure under p=reject. RFC 5322 3.6
  allows one From field, RFC 7489 6.6.1 notes such messages are typically
  rejected, and judging only one of the authors would let a second From with
  another domain slip past the first domain's policy. A From field too long
  or too nested to read (`relay.header_block.addresses_in`) is marked
  `several` too: an author nobody can tell must not slip past the policy.
- `organizational_domain(domain)` (RFC 7489 3.2): the public suffix plus
  one label, by the Public Suffix List shipped inside the `publicsuffixlist`
  package (read from that file once, at the first use; never fetched, so it
  is as recent as the installed package). A public suffix itself (gov.kz)
  is its own organizational domain; a name under no listed suffix takes its
  last label as the suffix (the list's default rule). The whole list is
  used, its private section too, as DMARC receivers commonly do: under
  github.io or blogspot.com the names belong to different parties, so
  foo.github.io is an organizational domain of its own, never aligned with
  bar.github.io nor under github.io's policy (the ICANN section alone would
  let such strangers pass relaxed alignment with each other).
- `DmarcLookup(dns).discover(author, deadline)`: the policy record at
  _dmarc.<author>, else at _dmarc.<organizational domain> (RFC 7489 6.6.3; a
  name with several DMARC records stops the discovery: no policy). A lookup
  that got no answer is temperror; a record whose p= (or sp=) is invalid,
  without rua= to fall back to p=none, is permerror.
- `verdict(...)`: pass when SPF passed for an aligned domain (MAIL FROM, or
  HELO for the null sender) or a DKIM signature passed with an aligned d=
  (adkim/aspf: r relaxed, organizational domains equal; s strict, equal
  names); otherwise temperror when an aligned identifier had a temporary
  error, else fail. The policy of a failure is sp= for a subdomain whose
  record came from its organizational domain, else p=; pct= picks the
  share of failures it applies to, the others get the next milder policy
  (6.6.4). Nothing here raises: lookup trouble and bad records are results.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import dns.rdatatype
import dns.rdtypes.ANY.TXT
from publicsuffixlist import PublicSuffixList

from relay.dns import AuthDns, DnsTrouble
from relay.header_block import Header, addresses_in
from relay.inbound.dkim_verify import DkimResult
from relay.inbound.spf import SpfResult
from ugem.core.names import canonical_domain

POLICIES = ("none", "quarantine", "reject")
MILDER = {"reject": "quarantine", "quarantine": "none", "none": "none"}
ALIGNMENT = ("r", "s")
_NO_POLICY = {False: "no DMARC record", True: "several DMARC records"}
_VERSION = re.compile(r"^[vV]\s*=\s*DMARC1\s*(;|$)")


@dataclass(frozen=True)
class Author:
    """The RFC5322.From domain, or why there is none."""

    domain: str | None  # canonical; None when there is no single author domain
    several: bool = False  # several From fields or addresses (or unreadable: not one author)
    unreadable: bool = False  # a From field too long or too nested to read (`addresses_in`)


@dataclass(frozen=True)
class DmarcRecord:
    domain: str  # where it was published: the author domain or its organizational domain
    p: str
    sp: str
    adkim: str
    aspf: str
    pct: int


@dataclass(frozen=True)
class Discovery:
    """Policy discovery's outcome: a record, no record, or an error (temperror/permerror)."""

    record: DmarcRecord | None
    error: str = ""  # "", "temperror" or "permerror"
    reason: str = ""


@dataclass(frozen=True)
class DmarcResult:
    result: str  # pass, fail, none, temperror, permerror
    author: str  # the header.from domain ("" when there is none)
    policy: str = ""  # the policy the record asks for this author ("" without a record)
    disposition: str = "none"  # what to do after pct=: none, quarantine or reject
    several_authors: bool = False
    reason: str = ""


class RecordError(ValueError):
    """A DMARC record without a usable policy (permerror)."""


def author_of(header: Header) -> Author:
    """The author domain of a parsed header (see the module's docstring)."""
    values = header.values("from")
    if len(values) > 1:
        return Author(None, several=True)
    addresses = addresses_in(values[0]) if values else []
    if addresses is None:
        return Author(None, several=True, unreadable=True)
    if len(addresses) > 1:
        return Author(None, several=True)
    if not addresses:
        return Author(None)
    return Author(_domain_of(addresses[0]) or None)


def _domain_of(address: str) -> str:
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return ""
    return _canonical(domain)


def _canonical(domain: str) -> str:
    try:
        return canonical_domain(domain)
    except ValueError:
        return ""


@functools.cache
def _suffixes() -> PublicSuffixList:
    """The Public Suffix List shipped in the package, both sections (read once)."""
    return PublicSuffixList()


def organizational_domain(domain: str) -> str:
    """RFC 7489 3.2 for a canonical domain: its public suffix plus one label (or itself)."""
    return _suffixes().privatesuffix(domain) or domain


def aligned(identifier: str, author: str, mode: str) -> bool:
    """Whether an authenticated domain is aligned with the author domain (both canonical)."""
    if not identifier or not author:
        return False
    if mode == "s":
        return identifier == author
    return organizational_domain(identifier) == organizational_domain(author)


def is_dmarc_record(text: str) -> bool:
    return _VERSION.match(text) is not None


def parse_record(text: str, domain: str) -> DmarcRecord:
    """A DMARC record's policy tags (lenient about the optional ones); RecordError without p=."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        key, eq, value = part.partition("=")
        if eq:
            tags.setdefault(key.strip().lower(), value.strip())
    p, sp = tags.get("p", "").lower(), tags.get("sp", tags.get("p", "")).lower()
    if p not in POLICIES or sp not in POLICIES:
        if not tags.get("rua"):
            raise RecordError(f"DMARC record of {domain} has no valid p= or sp= policy")
        p = sp = "none"  # RFC 7489 6.6.3: with rua=, act as if p=none
    adkim, aspf = tags.get("adkim", "r").lower(), tags.get("aspf", "r").lower()
    pct = tags.get("pct", "100")
    return DmarcRecord(
        domain=domain,
        p=p,
        sp=sp,
        adkim=adkim if adkim in ALIGNMENT else "r",
        aspf=aspf if aspf in ALIGNMENT else "r",
        pct=int(pct) if pct.isdigit() and int(pct) <= 100 else 100,
    )


class DmarcLookup:
    def __init__(self, dns: AuthDns) -> None:
        self.dns = dns

    async def discover(self, author: str, deadline: float) -> Discovery:
        """The policy record for `author` (RFC 7489 6.6.3), or why there is none."""
        try:
            records = await self._records(author, deadline)
            org = organizational_domain(author)
            if not records and org != author:
                author, records = org, await self._records(org, deadline)
            if len(records) != 1:
                return Discovery(None, reason=_NO_POLICY[bool(records)])
            return Discovery(parse_record(records[0], author))
        except DnsTrouble as exc:
            return Discovery(None, "temperror", str(exc))
        except RecordError as exc:
            return Discovery(None, "permerror", str(exc))

    async def _records(self, domain: str, deadline: float) -> list[str]:
        answer = await self.dns.query(f"_dmarc.{domain}", dns.rdatatype.TXT, deadline)
        texts = [
            b"".join(r.strings).decode("utf-8", "replace")
            for r in answer
            if isinstance(r, dns.rdtypes.ANY.TXT.TXT)
        ]
        return [t for t in texts if is_dmarc_record(t)]


def verdict(
    author: Author,
    found: Discovery,
    spf: SpfResult,
    dkims: Sequence[DkimResult],
    sample: float,
) -> DmarcResult:
    """The DMARC result and the disposition for one message; `sample` is uniform in [0, 1)."""
    if author.several:
        reason = "several From: fields or addresses (RFC 7489 6.6.1)"
        if author.unreadable:
            reason = "a From: field too long or too nested to read"
        return DmarcResult("permerror", "", several_authors=True, reason=reason)
    domain = author.domain
    if domain is None:
        return DmarcResult("none", "", reason="no author domain in From:")
    if found.error:
        return DmarcResult(found.error, domain, reason=found.reason)
    record = found.record
    if record is None:
        return DmarcResult("none", domain, reason=found.reason)
    policy = record.p if record.domain == domain else record.sp
    spf_aligned = aligned(_canonical(spf.domain), domain, record.aspf)
    dkim_aligned = [r for r in dkims if aligned(_canonical(r.domain), domain, record.adkim)]
    if (spf_aligned and spf.result == "pass") or any(r.result == "pass" for r in dkim_aligned):
        return DmarcResult("pass", domain, policy)
    temporary = (spf_aligned and spf.result == "temperror") or any(
        r.result == "temperror" for r in dkim_aligned
    )
    if temporary:
        reason = "an aligned identifier could not be checked now"
        return DmarcResult("temperror", domain, policy, reason=reason)
    disposition = policy if sample * 100 < record.pct else MILDER[policy]
    reason = "no aligned SPF or DKIM pass"
    return DmarcResult("fail", domain, policy, disposition, reason=reason)
