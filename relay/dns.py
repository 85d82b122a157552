"""DNS of the relay: every resolver is built here, and one async resolver serves worker threads.

`make_resolver(config)` is the only place a resolver is made: dnspython's async
resolver on `[delivery] dns_servers` ("ip", "ip:port" or "[v6]:port"; a bad
entry is a ConfigError) or, with none, the system's (/etc/resolv.conf), each
query bounded by `dns_timeout`. Outbound routing and MTA-STS
(`relay.deliver.routing.DnsCache`) build theirs with it; so does `AuthDns`,
the resolver of the inbound checks (SPF, DKIM, DMARC in `relay.inbound`) and
of the DNS readiness check (`relay.readiness`).

`AuthDns(config)` builds its resolver now for configured servers (a bad entry
is a ConfigError at construction) and reads the system's at the first lookup;
`AuthDns(config, lazy=True)` builds either at the first lookup, and a bad
entry is then each lookup's DnsTrouble. `await dns.lookup(name, rdtype,
deadline)` answers the records of `name` (CNAMEs followed by the resolver;
empty for NXDOMAIN and NODATA) and whether the name does not exist; `query`
answers the records alone. pyspf and dkimpy are synchronous and run in worker
threads: `dns.blocking(loop, deadline)` gives them a `BlockingDns` whose
`query` runs the same lookup on the event loop (`asyncio.run_coroutine_threadsafe`)
and waits for it: the one bridge from a thread to the loop, so there is one
resolver, one configuration and no global state in either library. (pyspf's
query is subclassed once, in `relay.inbound.spf`, to ask a `BlockingDns`.)

Every lookup is bounded by `dns_timeout` and by the time left to `deadline`
(on the loop's clock; `NO_DEADLINE` for none); a lookup that does not answer
in time, a SERVFAIL, a refusal or a missing resolver configuration raises
`DnsTrouble`, the one "no answer" error: the inbound checks report it as
`temperror`, the readiness check as a failed finding, never as a permanent
failure.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import math
from typing import NamedTuple

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdata
import dns.rdatatype
import dns.resolver

from ugem.core.config import DeliveryConfig, parse_hostport
from ugem.core.errors import ConfigError
from ugem.core.errors import DnsTrouble as DnsTrouble  # the relay's DNS error, imported from here

DNS_PORT = 53
NO_DEADLINE = math.inf  # a deadline that never comes: each lookup is bounded by dns_timeout alone
WAKE_SLACK = 1.0  # seconds a thread waits beyond the deadline for the loop to report it

Records = tuple[dns.rdata.Rdata, ...]


def _nameserver(text: str) -> dns.nameserver.Nameserver:
    """An "ip", "ip:port" or "[v6]:port" as a resolver's name server."""
    host, port = text.strip(), DNS_PORT
    try:
        if host.startswith("[") or host.count(":") == 1:
            host, port = parse_hostport(host)
        ipaddress.ip_address(host)
    except ValueError as exc:
        raise ConfigError(
            "delivery.dns_servers", text, "expected an IP address, ip:port or [v6]:port"
        ) from exc
    return dns.nameserver.Do53Nameserver(host, port)


def make_resolver(config: DeliveryConfig) -> dns.asyncresolver.Resolver:
    """The async resolver for `config`: its own servers (ConfigError if one is not an
    address), or the system's (/etc/resolv.conf; a DNSException if there is none)."""
    resolver = dns.asyncresolver.Resolver(configure=not config.dns_servers)
    if config.dns_servers:
        resolver.nameservers = [_nameserver(s) for s in config.dns_servers]
    resolver.timeout = config.dns_timeout
    resolver.lifetime = config.dns_timeout
    return resolver


class Answer(NamedTuple):
    records: Records  # empty for NXDOMAIN and NODATA
    nxdomain: bool


class AuthDns:
    def __init__(self, config: DeliveryConfig, *, lazy: bool = False) -> None:
        self.config = config
        # Configured servers are checked now (ConfigError) unless lazy; the system's at first use.
        self._resolver = make_resolver(config) if config.dns_servers and not lazy else None

    async def query(self, name: str, rdtype: dns.rdatatype.RdataType, deadline: float) -> Records:
        """The records of `name` (empty: NXDOMAIN or NODATA); DnsTrouble if none came in time."""
        return (await self.lookup(name, rdtype, deadline)).records

    async def lookup(self, name: str, rdtype: dns.rdatatype.RdataType, deadline: float) -> Answer:
        """As `query`, saying whether the name does not exist (NXDOMAIN)."""
        loop = asyncio.get_running_loop()
        lifetime = min(self.config.dns_timeout, deadline - loop.time())
        what = f"DNS {dns.rdatatype.to_text(rdtype)} lookup of {name}"
        if lifetime <= 0:
            raise DnsTrouble(name, rdtype, "out of time", f"{what}: out of time")
        try:
            qname = dns.name.from_text(name)
            resolver = self._get_resolver()
            answer = await resolver.resolve(
                qname, rdtype, raise_on_no_answer=False, search=False, lifetime=lifetime
            )
        except dns.resolver.NXDOMAIN:
            return Answer((), True)
        except dns.exception.Timeout as exc:
            raise DnsTrouble(name, rdtype, "timed out", f"{what} timed out") from exc
        except (dns.exception.DNSException, ConfigError) as exc:  # ConfigError: lazy only
            raise DnsTrouble(name, rdtype, str(exc), f"{what} failed: {exc}") from exc
        return Answer(tuple(answer.rrset) if answer.rrset is not None else (), False)

    def blocking(self, loop: asyncio.AbstractEventLoop, deadline: float) -> BlockingDns:
        """`query` for a worker thread: the lookup runs on `loop`, the thread waits for it."""
        return BlockingDns(self, loop, deadline)

    def _get_resolver(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            self._resolver = make_resolver(self.config)
        return self._resolver


class BlockingDns:
    """Synchronous lookups for code in a worker thread (never call it on the loop itself)."""

    def __init__(self, dns: AuthDns, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        self.dns = dns
        self.loop = loop
        self.deadline = deadline

    def query(self, name: str, rdtype: dns.rdatatype.RdataType) -> Records:
        """As `AuthDns.query`; waits at most until the deadline (plus the loop's reaction time)."""
        lookup = self.dns.query(name, rdtype, self.deadline)
        try:
            future = asyncio.run_coroutine_threadsafe(lookup, self.loop)
        except RuntimeError as exc:  # the loop has stopped
            lookup.close()
            stopped = "the event loop has stopped"
            raise DnsTrouble(name, rdtype, stopped, f"DNS lookup of {name}: {stopped}") from exc
        left = self.deadline - self.loop.time()
        wait = max(0.0, left) + WAKE_SLACK if math.isfinite(left) else None
        try:
            return future.result(timeout=wait)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            late = "no answer in time"
            raise DnsTrouble(name, rdtype, late, f"DNS lookup of {name}: {late}") from exc
        except concurrent.futures.CancelledError as exc:
            text = f"DNS lookup of {name} was cancelled"
            raise DnsTrouble(name, rdtype, "cancelled", text) from exc
