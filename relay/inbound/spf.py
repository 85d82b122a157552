"""SPF (RFC 7208) for mail from the internet: pyspf's evaluation over the node's resolver.

`SpfChecker(dns).check(client_ip, sender, helo, deadline)` runs check_host()
for the MAIL FROM identity, or, when MAIL FROM is null, for the HELO identity
(postmaster@<helo>, RFC 7208 2.3/2.4), and answers an `SpfResult`: pass,
fail, softfail, neutral, none, temperror or permerror, with the identity, the
domain whose policy decided and pyspf's explanation.

pyspf does the evaluation (record selection, mechanisms, macros, at most 10
MX and 10 PTR names) in strict mode; the limits of RFC 7208 4.6.4 that it
keeps in module globals are set per query here instead, without touching the
module: at most `MAX_DNS_TERMS` (10) DNS-querying terms and `MAX_VOID_LOOKUPS`
(2) lookups answering NXDOMAIN or nothing; one more of either is permerror.
`SpfQuery` is the one subclass of pyspf's query in the project (the readiness
check, `relay.readiness`, evaluates its SPF records with it too, in its own
wording): it overrides pyspf's per-query `dns()` method so that its DNS goes
through `relay.dns` (a `BlockingDns`, the resolver of `[delivery]
dns_servers`); pyspf's global `DNSLookup` is never replaced. pyspf is
synchronous, so it runs in a worker thread (of the executor given, else the
loop's default one); each lookup is bounded by `[delivery] dns_timeout` and
by the check's deadline. A lookup that times out or fails (`DnsTrouble`) is
temperror, never a permanent result. An unexpected exception from pyspf is
not swallowed here: it reaches the caller (`relay.inbound.checks` answers it
with 451).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import dns.rdatatype
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import spf

from relay.dns import WAKE_SLACK, AuthDns, BlockingDns, DnsTrouble, Records

MAX_DNS_TERMS = 10  # RFC 7208 4.6.4: include, a, mx, ptr, exists, redirect
MAX_VOID_LOOKUPS = 2  # RFC 7208 4.6.4: lookups answering NXDOMAIN or no records
MAX_LABEL = 63
TERMS_ERROR = f"More than {MAX_DNS_TERMS} DNS-querying terms"
RESULTS = ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror")


@dataclass(frozen=True)
class SpfResult:
    """One check_host() outcome for the identity the SMTP session gave."""

    result: str  # one of RESULTS
    identity: str  # "mailfrom", or "helo" when MAIL FROM was null
    value: str  # the MAIL FROM address, or the HELO name
    domain: str  # the domain whose SPF policy was asked ("" if there was none to ask)
    reason: str = ""


class SpfQuery(spf.query):  # type: ignore[misc]  # pyspf has no type hints
    """pyspf's query with its DNS through a `BlockingDns` and the RFC limits as attributes.

    `terms_error` words the permerror of one DNS-querying term too many;
    `describe` words a lookup's DnsTrouble as pyspf's TempError (str(): the
    whole sentence). The readiness check passes its own wordings.
    """

    def __init__(
        self,
        lookup: BlockingDns,
        ip: str,
        sender: str,
        helo: str,
        *,
        terms_error: str = TERMS_ERROR,
        describe: Callable[[DnsTrouble], str] = str,
    ) -> None:
        super().__init__(i=ip, s=sender, h=helo, strict=True)
        self._lookup = lookup
        self._terms_error = terms_error
        self._describe = describe

    def check_lookups(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_DNS_TERMS:
            raise spf.PermError(self._terms_error)

    def dns(
        self, name: str, qtype: str, cnames: object = None, ignore_void: bool = False
    ) -> list[Any]:
        """pyspf's lookup contract: a list of values (cached per query), void lookups counted."""
        name = str(name).rstrip(".").lower()
        if not all(0 < len(label) <= MAX_LABEL for label in name.split(".")):
            return []  # not a DNS name: no query, no answer (as pyspf does)
        key = (name, qtype)
        if key not in self.cache:
            self.cache[key] = self._values(name, qtype)
        result: list[Any] = self.cache[key]
        if not result and not ignore_void:
            self.void_lookups += 1
            if self.void_lookups > MAX_VOID_LOOKUPS:
                raise spf.PermError(f"Void lookup limit of {MAX_VOID_LOOKUPS} exceeded")
        return list(result)

    def _values(self, name: str, qtype: str) -> list[Any]:
        rdtype = dns.rdatatype.TXT if qtype == "SPF" else dns.rdatatype.from_text(qtype)
        try:
            records = self._lookup.query(name, rdtype)
        except DnsTrouble as exc:
            raise spf.TempError(self._describe(exc)) from exc
        return spf_values(records)


def spf_values(records: Records) -> list[Any]:
    """DNS records in the shapes pyspf works on (its DNSLookup's values)."""
    values: list[Any] = []
    for rec in records:
        if isinstance(rec, dns.rdtypes.IN.A.A | dns.rdtypes.IN.AAAA.AAAA):
            values.append(str(rec.address))
        elif isinstance(rec, dns.rdtypes.ANY.MX.MX):
            values.append((rec.preference, rec.exchange.to_text(omit_final_dot=True)))
        elif isinstance(rec, dns.rdtypes.ANY.PTR.PTR):
            values.append(rec.target.to_text(omit_final_dot=True))
        elif isinstance(rec, dns.rdtypes.ANY.TXT.TXT):
            values.append(list(rec.strings))
    return values


class SpfChecker:
    def __init__(self, dns: AuthDns, executor: Executor | None = None) -> None:
        self.dns = dns
        self.executor = executor  # the worker threads (None: the loop's default executor)

    async def check(self, client_ip: str, sender: str, helo: str, deadline: float) -> SpfResult:
        """check_host() for the session's identity, done by `deadline` (loop time) or temperror."""
        identity, value = ("mailfrom", sender) if sender else ("helo", helo)
        if not value:
            return SpfResult("none", identity, value, "", "no identity to check")
        loop = asyncio.get_running_loop()
        lookup = self.dns.blocking(loop, deadline)
        try:
            async with asyncio.timeout_at(deadline + WAKE_SLACK):
                return await loop.run_in_executor(
                    self.executor, evaluate, lookup, client_ip, sender, helo
                )
        except TimeoutError:
            return SpfResult("temperror", identity, value, "", "SPF check ran out of time")


def evaluate(lookup: BlockingDns, client_ip: str, sender: str, helo: str) -> SpfResult:
    """The blocking evaluation (run in a worker thread)."""
    query = SpfQuery(lookup, client_ip, sender, helo)
    result, _code, explanation = query.check()
    identity, value = ("mailfrom", sender) if sender else ("helo", helo)
    domain = str(query.o or "").rstrip(".").lower()
    if result not in RESULTS:  # pyspf's lax-mode extras; never in strict mode
        result = "permerror"
    return SpfResult(result, identity, value, domain, str(explanation or ""))
