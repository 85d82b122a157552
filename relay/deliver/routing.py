"""Outbound routing: which next hops a recipient domain's mail goes to.

`Router.route(domain)` answers a `Route`: a key naming the destination (for
connection reuse and concurrency limits) and the hops to try in order. The
rules, first match wins:

1. `[delivery] routes` (domain -> "host:port") overrides everything, connected
   domains included; key "route:<host:port>";
2. a domain of a live connection goes to that connection's mail servers in
   their listed order on `[delivery] smtp_port` (networks wider than one
   address are not hops); key "conn:<connection id>";
3. otherwise DNS (the resolver `relay.dns.make_resolver` builds on
   `[delivery] dns_servers`): the MX hosts by preference (random among
   equal ones), each resolved to its A and AAAA addresses; with no MX, the
   domain's own addresses (implicit MX); key "mx:<domain>", and
   `Route.mx_domain` names the domain: only such routes are subject to the
   domain's MTA-STS policy (`relay.deliver.mta_sts`), never a configured
   route or a connection's servers.

Each hop carries the name its TLS certificate must match when the
destination requires verified TLS (`Hop.name`): the MX host it was resolved
from (the domain itself for an implicit MX), the host of a configured route,
or none for a connection's server address (its address is checked instead).

Failures are raised as `RouteFailure` (`ugem.core.errors`) with a reply code,
an enhanced status and a permanence, named in `relay.deliver.trouble`: NXDOMAIN
550 5.1.2, null MX (RFC 7505) 556 5.1.10, no MX and no address 550 5.4.4, an
IP-literal or malformed domain 550 5.1.2 (bounced); DNS timeouts, SERVFAIL, MX
hosts without addresses 451 4.4.3, a connection without a single-address
server 451 4.4.4 (deferred); so does a host with no system
resolver (read at the first lookup; a bad `dns_servers` entry is a
ConfigError at construction). DNS answers (positive, NODATA and NXDOMAIN) are
cached for their TTL on the injected clock (`DnsCache`, also used for the
MTA-STS lookups); failed lookups are not cached.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rdata
import dns.rdatatype
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.resolver

from relay.deliver.trouble import DNS_FAILED, NO_HOP, NO_MAIL_HOST, NO_SUCH_DOMAIN, NULL_MX
from relay.dns import make_resolver
from ugem.core.clock import Clock
from ugem.core.config import DeliveryConfig, parse_hostport
from ugem.core.errors import RouteFailure as RouteFailure  # relay.queue.schedule imports it here
from ugem.core.model import Connection
from ugem.core.names import canonical_domain
from ugem.core.registry import Registry

MAX_HOPS = 10  # addresses tried for one destination in one attempt (Postfix: 5 MX addresses)
NXDOMAIN_TTL = 300  # negative TTL when an NXDOMAIN answer carries no SOA
MAX_CACHE = 10_000  # cached answers before expired ones are swept
_A, _AAAA, _MX = dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.MX
_TXT = dns.rdatatype.TXT


@dataclass(frozen=True)
class Hop:
    """One next hop: an address (or host name) and a port; str() is "host:port".

    `name` is the host name a certificate must match (the MX host), "" when it
    is `host` itself; it is not part of a hop's identity.
    """

    host: str
    port: int
    name: str = field(default="", compare=False)

    @property
    def tls_name(self) -> str:
        """The name a verified TLS session checks the certificate against."""
        return self.name or self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class Route:
    """Where a domain's mail goes: a destination key and the hops to try in order.

    `mx_domain` is the recipient domain whose MX records (or implicit MX) gave
    the hops, "" for a configured route or a connection; not part of the identity.
    """

    key: str
    hops: tuple[Hop, ...]
    mx_domain: str = field(default="", compare=False)


def _dns_trouble(text: str) -> RouteFailure:
    return RouteFailure(*DNS_FAILED, text)


@dataclass(frozen=True)
class _Answer:
    """One cached DNS answer: no records and not NXDOMAIN means NODATA."""

    records: tuple[dns.rdata.Rdata, ...]
    nxdomain: bool
    expires: float


def _negative_ttl(exc: dns.resolver.NXDOMAIN) -> float:
    """The negative-caching TTL of an NXDOMAIN answer (its SOA), or a default."""
    responses = exc.kwargs.get("responses") or {}
    for response in responses.values():
        if isinstance(response, dns.message.QueryMessage):
            try:
                return float(response.resolve_chaining().minimum_ttl)
            except dns.exception.DNSException:
                break
    return NXDOMAIN_TTL


def _is_ip_literal(domain: str) -> bool:
    text = domain.strip().rstrip(".")
    if text.startswith("["):
        return True
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _canonical(domain: str) -> str:
    if _is_ip_literal(domain):
        raise RouteFailure(*NO_SUCH_DOMAIN, f"IP-literal domain {domain} is not routed")
    try:
        return canonical_domain(domain)
    except ValueError as exc:
        raise RouteFailure(*NO_SUCH_DOMAIN, f"bad destination domain: {exc}") from exc


def _by_preference(domain: str, records: Sequence[dns.rdata.Rdata]) -> list[str]:
    """MX host names, lowest preference first, shuffled among equals; null MX raises."""
    groups: dict[int, list[str]] = {}
    for rec in records:
        if isinstance(rec, dns.rdtypes.ANY.MX.MX) and rec.exchange != dns.name.root:
            host = rec.exchange.to_text(omit_final_dot=True).lower()
            groups.setdefault(rec.preference, []).append(host)
    if not groups:
        raise RouteFailure(*NULL_MX, f"domain {domain} does not accept mail (null MX)")
    hosts: list[str] = []
    for preference in sorted(groups):
        group = groups[preference]
        random.shuffle(group)
        hosts += group
    return list(dict.fromkeys(hosts))


def connection_route(conn: Connection, port: int) -> Route:
    """A connection's single-address servers in their listed order."""
    hops = []
    for server in conn.servers:
        net = ipaddress.ip_network(server)
        if net.num_addresses == 1:
            hops.append(Hop(str(net.network_address), port))
    if not hops:
        raise RouteFailure(
            *NO_HOP, f"connection {conn.id} has no deliverable server address (only networks)"
        )
    return Route(f"conn:{conn.id}", tuple(hops))


class DnsCache:
    """DNS answers through `make_resolver(config)`, cached for their TTL on `clock`.

    Lookups raise RouteFailure (451 4.4.3) on timeouts and server failures;
    NXDOMAIN and NODATA are answers (cached like records). The system's
    resolver, when `dns_servers` is empty, is read at the first lookup.
    """

    def __init__(self, config: DeliveryConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self._resolver = make_resolver(config) if config.dns_servers else None
        self._cache: dict[tuple[str, dns.rdatatype.RdataType], _Answer] = {}

    async def addresses(self, host: str) -> tuple[list[str], RouteFailure | None]:
        """A host's IPv4 then IPv6 addresses, and the lookup failure if there was one."""
        addrs: list[str] = []
        trouble: RouteFailure | None = None
        found = await asyncio.gather(self._try_lookup(host, _A), self._try_lookup(host, _AAAA))
        for answer in found:
            if isinstance(answer, RouteFailure):
                trouble = answer
                continue
            for rec in answer.records:
                if isinstance(rec, dns.rdtypes.IN.A.A | dns.rdtypes.IN.AAAA.AAAA):
                    addrs.append(str(rec.address))
        return addrs, trouble

    async def texts(self, name: str) -> list[str]:
        """The TXT records of `name`, each one's strings joined ([] for NXDOMAIN or NODATA);
        bytes that are not ASCII are read as Latin-1."""
        answer = await self.lookup(name, _TXT)
        return [
            b"".join(rec.strings).decode("latin-1")
            for rec in answer.records
            if isinstance(rec, dns.rdtypes.ANY.TXT.TXT)
        ]

    async def _try_lookup(
        self, name: str, rdtype: dns.rdatatype.RdataType
    ) -> _Answer | RouteFailure:
        try:
            return await self.lookup(name, rdtype)
        except RouteFailure as exc:
            return exc

    async def lookup(self, name: str, rdtype: dns.rdatatype.RdataType) -> _Answer:
        """One DNS answer, from the cache while its TTL lasts; trouble raises (451 4.4.3)."""
        now = self.clock.monotonic()
        cached = self._cache.get((name, rdtype))
        if cached is not None and cached.expires > now:
            return cached
        answer = await self._query(name, rdtype, now)
        if len(self._cache) >= MAX_CACHE:
            self._sweep(now)
        self._cache[(name, rdtype)] = answer
        return answer

    async def _query(self, name: str, rdtype: dns.rdatatype.RdataType, now: float) -> _Answer:
        qtype = dns.rdatatype.to_text(rdtype)
        try:
            answer = await self._get_resolver().resolve(
                dns.name.from_text(name), rdtype, raise_on_no_answer=False, search=False
            )
        except dns.resolver.NXDOMAIN as exc:
            return _Answer((), True, now + _negative_ttl(exc))
        except dns.exception.Timeout as exc:
            raise _dns_trouble(f"DNS {qtype} lookup of {name} timed out") from exc
        except dns.exception.DNSException as exc:
            raise _dns_trouble(f"DNS {qtype} lookup of {name} failed: {exc}") from exc
        records = tuple(answer.rrset) if answer.rrset is not None else ()
        return _Answer(records, False, now + answer.chaining_result.minimum_ttl)

    def _get_resolver(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            self._resolver = make_resolver(self.config)
        return self._resolver

    def _sweep(self, now: float) -> None:
        self._cache = {k: v for k, v in self._cache.items() if v.expires > now}
        if len(self._cache) >= MAX_CACHE:
            self._cache.clear()


class Router:
    def __init__(self, registry: Registry, config: DeliveryConfig, clock: Clock) -> None:
        self.registry = registry
        self.config = config
        self.clock = clock
        # Configured servers are checked now; the system's are read at the first lookup,
        # so a host without /etc/resolv.conf still relays by routes and connections.
        self.dns = DnsCache(config, clock)
        self._routes = {dom: Hop(*parse_hostport(hop)) for dom, hop in config.routes.items()}

    def reroute(self, routes: dict[str, str]) -> None:
        """`[delivery] routes` anew (a reload): the routes of mail routed from now on."""
        self._routes = {dom: Hop(*parse_hostport(hop)) for dom, hop in routes.items()}

    async def route(self, domain: str) -> Route:
        """The route for `domain` (any spelling); raises RouteFailure."""
        name = _canonical(domain)
        hop = self._routes.get(name)
        if hop is not None:
            return Route(f"route:{hop}", (hop,))
        conn = self.registry.by_domain(name)
        if conn is not None:
            return connection_route(conn, self.config.smtp_port)
        return Route(f"mx:{name}", await self._mx_hops(name), mx_domain=name)

    async def _mx_hops(self, domain: str) -> tuple[Hop, ...]:
        mx = await self.dns.lookup(domain, _MX)
        if mx.nxdomain:
            raise RouteFailure(
                *NO_SUCH_DOMAIN, f"host or domain name not found: {domain} (NXDOMAIN)"
            )
        if not mx.records:
            return await self._implicit_mx(domain)
        hosts = _by_preference(domain, mx.records)
        found = await asyncio.gather(*(self.dns.addresses(host) for host in hosts))
        hops = self._hops(
            [(addr, host) for host, (addrs, _) in zip(hosts, found, strict=True) for addr in addrs]
        )
        if not hops:
            raise _dns_trouble(
                f"no address found for the MX hosts of {domain}: " + ", ".join(hosts)
            )
        return hops

    async def _implicit_mx(self, domain: str) -> tuple[Hop, ...]:
        """RFC 5321 5.1: no MX records, so the domain itself is the mail host."""
        addrs, trouble = await self.dns.addresses(domain)
        if addrs:
            return self._hops([(addr, domain) for addr in addrs])
        if trouble is not None:
            raise trouble
        raise RouteFailure(*NO_MAIL_HOST, f"domain {domain} has no MX and no address record")

    def _hops(self, addrs: Sequence[tuple[str, str]]) -> tuple[Hop, ...]:
        """Hops of (address, host name) pairs in order; an address only once."""
        unique = dict.fromkeys(Hop(addr, self.config.smtp_port, name) for addr, name in addrs)
        return tuple(unique)[:MAX_HOPS]
