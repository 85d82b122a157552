"""DNS blocklist (DNSBL) lookups of the gateway's own addresses, one answer per address and list.

`DnsblChecker(delivery, timeout).check(addresses, zones)` asks every zone
about every address, concurrently (at most `CONCURRENCY` lookups at once),
and answers one `DnsblAnswer` per (address, zone), in the order given. The
question is an A lookup of `query_name(address, zone)` (RFC 5782 2.1: an
IPv4 address's octets reversed, an IPv6 address's 32 nibbles reversed, then
the zone), through `relay.dns.AuthDns` on `[delivery] dns_servers` (or the
system's resolver), each lookup bounded by `timeout` seconds. What the
answer means (`classify`, a pure function of the codes answered):

- NXDOMAIN, or the name with no A record: `clear`;
- an address in 127.0.0.0/8 other than the error codes below: `listed`; the
  TXT record at the same name, when there is one, is the list's reason;
- only error codes: `unusable` (the list did not judge the address), with
  what the code means: 127.255.255.0/24 is the lists' range of query errors
  (Spamhaus: .252 a typo in the zone's name, .254 a query through a
  public/open resolver, .255 too many queries), 127.0.0.1 is never a listing
  (RFC 5782 5: lists answer it to refuse a querier), an address outside
  127.0.0.0/8 is no DNSBL answer at all (a wildcard, a zone gone or taken
  over);
- no answer in time, SERVFAIL, a refusal, no resolver: `unknown`, with the
  lookup's trouble.

Promises: `check` never raises for DNS trouble (only a `ConfigError` at
construction, for a `[delivery] dns_servers` entry that is not an address,
as `AuthDns` does); no error code and no failed lookup is ever `listed`,
no failed lookup is ever `clear`; a reason is at most `MAX_REASON`
characters. Most lists publish IPv4 data only and answer NXDOMAIN (clear)
for an IPv6 address.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import dns.rdata
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A

from relay.dns import NO_DEADLINE, AuthDns, DnsTrouble
from ugem.core.config import Config, DeliveryConfig

CONCURRENCY = 16  # lookups in flight at once, over all addresses and zones
MAX_REASON = 500  # characters of a list's TXT reason kept
LISTINGS = ipaddress.IPv4Network("127.0.0.0/8")
ERROR_RANGE = ipaddress.IPv4Network("127.255.255.0/24")
NEVER_LISTED = ipaddress.IPv4Address("127.0.0.1")
ERROR_CODES = {  # documented by Spamhaus; others answer in the same range
    "127.255.255.252": "typing error in the DNSBL name",
    "127.255.255.254": "query via a public/open resolver (or one with generic rDNS): "
    "ask through a resolver of your own",
    "127.255.255.255": "excessive number of queries",
}


class Listing(StrEnum):
    LISTED = "listed"  # the list names the address
    CLEAR = "clear"  # the list does not name it (NXDOMAIN)
    UNUSABLE = "unusable"  # the list answered an error code: it did not judge the address
    UNKNOWN = "unknown"  # no answer (timeout, SERVFAIL, refused, no resolver)


@dataclass(frozen=True)
class DnsblAnswer:
    address: str
    zone: str
    state: Listing
    reason: str  # listed: the list's TXT text ("" if none); unusable, unknown: why
    codes: tuple[str, ...] = ()  # the A records answered


def query_name(address: str, zone: str) -> str:
    """<reversed address>.<zone> (RFC 5782 2.1, 2.4); ValueError if `address` is no IP."""
    ip = ipaddress.ip_address(address.strip())
    if isinstance(ip, ipaddress.IPv4Address):
        labels = reversed(str(ip).split("."))
    else:
        labels = reversed(ip.exploded.replace(":", ""))
    return ".".join([*labels, zone.rstrip(".")])


def _error(code: str) -> str:
    """What an answer that is no listing means ("" when it is a listing)."""
    try:
        ip = ipaddress.ip_address(code)
    except ValueError:
        return f"{code}: not an address"
    if ip not in LISTINGS:
        return f"{code}: outside 127.0.0.0/8, not a DNSBL answer (a wildcard or a lapsed zone?)"
    if ip == NEVER_LISTED:
        return f"{code}: never a listing (RFC 5782 5); the list refuses our queries"
    if ip in ERROR_RANGE:
        meaning = ERROR_CODES.get(code, "an error code of the list")
        return f"{code}: {meaning}, not a listing"
    return ""


def classify(codes: Sequence[str]) -> tuple[Listing, str]:
    """The state the A records `codes` answer, and why when it is not a listing."""
    if not codes:
        return Listing.CLEAR, ""
    errors = [_error(code) for code in codes]
    if not all(errors):
        return Listing.LISTED, ""
    return Listing.UNUSABLE, "; ".join(errors)


def _txt(records: Sequence[dns.rdata.Rdata]) -> str:
    """TXT records' character-strings joined, records apart by " | ", cut to MAX_REASON."""
    texts = [
        b"".join(r.strings).decode("utf-8", "replace")
        for r in records
        if isinstance(r, dns.rdtypes.ANY.TXT.TXT)
    ]
    return " | ".join(texts)[:MAX_REASON]


class DnsblChecker:
    """Lookups of addresses on blocklists through one resolver; `check` may be called often."""

    def __init__(self, delivery: DeliveryConfig, timeout: float) -> None:
        # [delivery]'s resolver, each lookup bounded by [reputation] timeout
        self.dns = AuthDns(dataclasses.replace(delivery, dns_timeout=timeout))

    async def check(self, addresses: Sequence[str], zones: Sequence[str]) -> list[DnsblAnswer]:
        """One answer per (address, zone), addresses outer, zones inner; never raises."""
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(address: str, zone: str) -> DnsblAnswer:
            async with gate:
                return await self.lookup(address, zone)

        pairs = [(address, zone) for address in addresses for zone in zones]
        return list(await asyncio.gather(*(one(a, z) for a, z in pairs)))

    async def lookup(self, address: str, zone: str) -> DnsblAnswer:
        """`address` on `zone`: listed (with the TXT reason), clear, unusable or unknown."""
        try:
            name = query_name(address, zone)
        except ValueError as exc:
            return DnsblAnswer(address, zone, Listing.UNKNOWN, f"not an IP address: {exc}")
        try:
            answer = await self.dns.lookup(name, dns.rdatatype.A, NO_DEADLINE)
        except DnsTrouble as exc:
            return DnsblAnswer(address, zone, Listing.UNKNOWN, exc.brief())
        codes = tuple(r.address for r in answer.records if isinstance(r, dns.rdtypes.IN.A.A))
        state, why = classify(codes)
        if state == Listing.LISTED:
            why = await self._reason(name)
        return DnsblAnswer(address, zone, state, why, codes)

    async def _reason(self, name: str) -> str:
        """The list's TXT text for a listed name; why there is none when the lookup failed."""
        try:
            return _txt((await self.dns.lookup(name, dns.rdatatype.TXT, NO_DEADLINE)).records)
        except DnsTrouble as exc:
            return f"no reason: {exc.brief()}"


def dnsbl_from_config(config: Config) -> DnsblChecker:
    """The node's checker: `[delivery]`'s resolver, `[reputation] timeout` per lookup."""
    return DnsblChecker(config.delivery, config.reputation.timeout)
