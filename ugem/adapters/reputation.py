"""The relay's DNSBL lookups as the reputation service sees them (`Blocklists`).

`DnsblBlocklists(checker)` implements `ugem.core.services.reputation.Blocklists`
over `relay.reputation.dnsbl.DnsblChecker`: each `DnsblAnswer` becomes the
service's `Probe` (the four states have the same names on both floors).
`reputation_service(config, clock, metrics, announce)` is the service of a node or of
`ugem reputation check`: `[node] public_addresses` on `[reputation]
dnsbl_zones`, looked up through `[delivery]`'s resolver with `[reputation]
timeout` per lookup (with no address or no zone, no resolver is built and
`check` says which is missing). It adds no rule of its own; a `[delivery]
dns_servers` entry that is not an address is the checker's `ConfigError`.
"""

from __future__ import annotations

from collections.abc import Sequence

from relay.reputation.dnsbl import DnsblAnswer, DnsblChecker, dnsbl_from_config
from ugem.core.clock import Clock
from ugem.core.config import Config
from ugem.core.metrics import Metrics
from ugem.core.services.reputation import Listing, Probe, ReputationService


def probe(answer: DnsblAnswer) -> Probe:
    """The relay's answer as the service's probe."""
    state = Listing(answer.state.value)
    return Probe(answer.address, answer.zone, state, answer.reason, answer.codes)


class DnsblBlocklists:
    def __init__(self, checker: DnsblChecker) -> None:
        self.checker = checker

    async def check(self, addresses: Sequence[str], zones: Sequence[str]) -> list[Probe]:
        return [probe(answer) for answer in await self.checker.check(addresses, zones)]


def reputation_service(
    config: Config, clock: Clock, metrics: Metrics | None = None, announce: bool = True
) -> ReputationService:
    """The watch of the configured addresses on the configured lists (`announce`: log and
    pass on the changes; a one-off check does not)."""
    rep, addresses = config.reputation, config.node.public_addresses
    wanted = bool(addresses and rep.dnsbl_zones)  # else no resolver is built: nothing to ask
    return ReputationService(
        DnsblBlocklists(dnsbl_from_config(config)) if wanted else None,
        addresses,
        rep.dnsbl_zones,
        clock,
        metrics,
        interval=rep.interval,
        announce=announce,
    )
