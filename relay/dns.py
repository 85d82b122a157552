"""DNS for the inbound checks (SPF, DKIM, DMARC): one async resolver, usable from worker threads.

`AuthDns(config)` holds the node's async resolver (`relay.deliver.routing.make_resolver`,
so `[delivery] dns_servers` and `dns_timeout` apply; a bad server entry is a
ConfigError at construction, the system's resolver is read at the first
lookup). `await dns.query(name, rdtype, deadline)` answers the records of
`name` (CNAMEs followed by the resolver; empty for NXDOMAIN and NODATA).
pyspf and dkimpy are synchronous and run in worker threads:
`dns.blocking(loop, deadline)` gives them a `BlockingDns` whose `query` runs
the same lookup on the event loop (`asyncio.run_coroutine_threadsafe`) and
waits for it, so there is one resolver, one configuration and no global state
in either library.

Every lookup is bounded by `dns_timeout` and by the time left to `deadline`
(on the loop's clock); a lookup that does not answer in time, a SERVFAIL, a
refusal or a missing resolver configuration raises `DnsTrouble`, which the
checks report as `temperror`, never as a permanent failure.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdata
import dns.rdatatype
import dns.resolver

from relay.deliver.routing import make_resolver
from ugem.core.config import DeliveryConfig
from ugem.core.errors import UgemError

Records = tuple[dns.rdata.Rdata, ...]


class DnsTrouble(UgemError):
    """A lookup got no usable answer (timeout, SERVFAIL, no resolver): a temporary error."""


class AuthDns:
    def __init__(self, config: DeliveryConfig) -> None:
        self.config = config
        # Configured servers are checked now (ConfigError); the system's are read at first use.
        self._resolver = make_resolver(config) if config.dns_servers else None

    async def query(self, name: str, rdtype: dns.rdatatype.RdataType, deadline: float) -> Records:
        """The records of `name` (empty: NXDOMAIN or NODATA); DnsTrouble if none came in time."""
        loop = asyncio.get_running_loop()
        lifetime = min(self.config.dns_timeout, deadline - loop.time())
        what = f"DNS {dns.rdatatype.to_text(rdtype)} lookup of {name}"
        if lifetime <= 0:
            raise DnsTrouble(f"{what}: out of time")
        try:
            qname = dns.name.from_text(name)
            resolver = self._get_resolver()
            answer = await resolver.resolve(
                qname, rdtype, raise_on_no_answer=False, search=False, lifetime=lifetime
            )
        except dns.resolver.NXDOMAIN:
            return ()
        except dns.exception.Timeout as exc:
            raise DnsTrouble(f"{what} timed out") from exc
        except dns.exception.DNSException as exc:
            raise DnsTrouble(f"{what} failed: {exc}") from exc
        return tuple(answer.rrset) if answer.rrset is not None else ()

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
            raise DnsTrouble(f"DNS lookup of {name}: the event loop has stopped") from exc
        wait = max(0.0, self.deadline - self.loop.time()) + WAKE_SLACK
        try:
            return future.result(timeout=wait)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise DnsTrouble(f"DNS lookup of {name}: no answer in time") from exc
        except concurrent.futures.CancelledError as exc:
            raise DnsTrouble(f"DNS lookup of {name} was cancelled") from exc


WAKE_SLACK = 1.0  # seconds a thread waits beyond the deadline for the loop to report it
