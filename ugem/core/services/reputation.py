"""The gateway's standing on the public DNS blocklists: the state per address and list, kept.

One logic for `ugem reputation check`, `GET /v1/reputation` and the node's
periodic watch. `ReputationService(blocklists, addresses, zones, clock)`
holds, for every (address, zone) checked, its `Standing`: `Listing` listed,
clear, unusable (the list answered an error code, e.g. Spamhaus refusing a
public resolver) or unknown (no answer), since when (the clock's time of the
check that first found this state, kept while checks find it again), the
list's reason (its TXT text) or why there is no verdict, the codes answered
and the time of the last check. `check()` asks `blocklists` now (a small
protocol the roof's adapter implements over the relay's DNSBL lookups,
`ugem.adapters.reputation`; the services do not import the relay) about
every address in every zone, merges the answers into the state and gives
the `Report`; `report()` gives the state as it is, without asking.
`watch()` is the node's task: a check at once, then one every `interval`
seconds of the injected clock (`ugem.core.tasks.run_every`), a failed check
logged (`reputation_check_failed`) and tried again at the next interval.

A change of state (a pair seen for the first time in a state other than
clear, or a pair whose state differs from the previous check's) logs one
structured WARNING line, `reputation_changed` (address, zone, before, after,
reason), and is given to every hook registered with `on_change(hook)`, after
the state is updated, as the list of that check's `Change`s (the place for
the operators' alerts and incidents; a hook that raises is logged,
`reputation_hook_failed`, and the others still run); with `announce=False`
(a one-off check, `ugem reputation check`, which knows no earlier state and
prints what it found) changes are neither logged nor told. With `metrics`, the
gauge `ugem_reputation_listed{address,zone}` is 1 while the pair is listed
and 0 once it is found clear; unusable and unknown leave it at the last
verdict (0 before any), so an unanswered lookup neither raises nor clears an
alert; `ugem_reputation_last_check_timestamp_seconds` is the last check's time.

Errors: `check` with no address or no zone to check raises `ConfigError`
naming `node.public_addresses` or `reputation.dnsbl_zones`; what
`blocklists` raises passes through (it is not meant to raise: DNS trouble is
`unknown`) and leaves the state as it was. Checks never overlap: a second
`check` waits for the first. The state lives in this process's memory only:
a restart begins again with none, and `since` is then the first check's time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from ugem.core.clock import Clock
from ugem.core.errors import ConfigError
from ugem.core.log import event
from ugem.core.metrics import Metrics
from ugem.core.paging import DEFAULT_LIMIT, Page, page_of
from ugem.core.tasks import TICK, run_every

log = logging.getLogger(__name__)


class Listing(StrEnum):
    LISTED = "listed"  # the list names the address: mail from it is refused or junked there
    CLEAR = "clear"  # the list does not name it
    UNUSABLE = "unusable"  # the list answered an error code: no verdict (e.g. public resolver)
    UNKNOWN = "unknown"  # no answer: timeout, SERVFAIL, refused


@dataclass(frozen=True)
class Probe:
    """One answer of the blocklists: `address` as `zone` sees it now."""

    address: str
    zone: str
    state: Listing
    reason: str = ""  # listed: the list's TXT text; unusable, unknown: why there is no verdict
    codes: tuple[str, ...] = ()  # the A records the list answered


class Blocklists(Protocol):
    """The lookups the service needs (implemented by the roof over the relay's DNSBL checker)."""

    async def check(self, addresses: Sequence[str], zones: Sequence[str]) -> list[Probe]:
        """One `Probe` per (address, zone), now; DNS trouble is `unknown`, never raised."""
        ...


@dataclass(frozen=True)
class Standing:
    """What is known of one address on one list."""

    address: str
    zone: str
    state: Listing
    since: float  # the time of the check that first found this state (Unix time)
    checked_at: float  # the time of the last check (Unix time)
    reason: str = ""
    codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Change:
    """A pair whose state a check changed; `before` is None for a pair never checked."""

    before: Listing | None
    after: Standing


@dataclass(frozen=True)
class Report:
    addresses: tuple[str, ...]
    zones: tuple[str, ...]
    last_check: float | None  # None: never checked (by this process)
    standings: tuple[Standing, ...]  # addresses outer, zones inner, as configured

    @property
    def listed(self) -> bool:
        """Whether any address is listed on any list."""
        return any(s.state == Listing.LISTED for s in self.standings)

    @property
    def complete(self) -> bool:
        """Whether every pair was checked and has a verdict (listed or clear)."""
        pairs = len(self.addresses) * len(self.zones)
        verdicts = (Listing.LISTED, Listing.CLEAR)
        return len(self.standings) == pairs and all(s.state in verdicts for s in self.standings)


Hook = Callable[[list[Change]], Awaitable[None]]


class ReputationService:
    def __init__(
        self,
        blocklists: Blocklists | None,
        addresses: Sequence[str],
        zones: Sequence[str],
        clock: Clock,
        metrics: Metrics | None = None,
        interval: float = 3600.0,
        announce: bool = True,
    ) -> None:
        self.blocklists = blocklists
        self.addresses = tuple(addresses)
        self.zones = tuple(zones)
        self.pairs = tuple((a, z) for a in self.addresses for z in self.zones)
        self.clock = clock
        self.metrics = metrics
        self.interval = interval  # seconds between the checks of `watch`
        self.watching = False  # whether `watch` runs (in a node: worker 0's)
        self.announce = announce  # log the changes and tell the hooks
        self.last_check: float | None = None
        self._wanted = frozenset(self.pairs)
        self._state: dict[tuple[str, str], Standing] = {}
        self._hooks: list[Hook] = []
        self._lock = asyncio.Lock()

    @property
    def configured(self) -> bool:
        """Whether there is something to check: blocklists, addresses and zones."""
        return self.blocklists is not None and bool(self.addresses) and bool(self.zones)

    def on_change(self, hook: Hook) -> None:
        """Call `hook` with each check's changes (none: not called), after the state moved."""
        self._hooks.append(hook)

    def report(self) -> Report:
        """The state as the last check left it."""
        known = (self._state.get(pair) for pair in self.pairs)
        standings = tuple(s for s in known if s is not None)
        return Report(self.addresses, self.zones, self.last_check, standings)

    def standings(self, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> Page[Standing]:
        """A page of the report's standings, addresses outer and zones inner as configured
        (keyset on their places in the configuration: `ugem.core.paging`), and the total."""
        place = {pair: n for n, pair in enumerate(self.pairs)}

        def key(standing: Standing) -> int:
            return place[standing.address, standing.zone]

        return page_of(self.report().standings, key, limit, cursor, "standings")

    async def watch(
        self, tick: float = TICK, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        """Check now and every `interval` seconds of the clock, until cancelled."""
        self.watching = True
        try:
            await run_every(self.clock, self.interval, self._check_logged, tick, sleep)
        finally:
            self.watching = False

    async def _check_logged(self) -> None:
        try:
            await self.check()
        except Exception:
            event(log, "reputation_check_failed", logging.WARNING, exc_info=True)

    async def check(self) -> Report:
        """Ask the blocklists now, merge the answers, log and pass on the changes."""
        blocklists = self._blocklists()
        async with self._lock:
            probes = await blocklists.check(self.addresses, self.zones)
            now = self.clock.now()
            changes = [c for p in probes if (c := self._merge(p, now)) is not None]
            self.last_check = now
            if self.metrics is not None:
                self.metrics.reputation_last_check.set(now)
        if self.announce:
            for change in changes:
                self._log(change)
            await self._tell(changes)
        return self.report()

    def _blocklists(self) -> Blocklists:
        if not self.addresses:
            raise ConfigError(
                "node.public_addresses", [], "list the gateway's outbound addresses to check them"
            )
        if not self.zones:
            raise ConfigError(
                "reputation.dnsbl_zones", [], "list at least one DNSBL zone to check on"
            )
        if self.blocklists is None:  # a service built to show nothing (admin.api's default)
            raise ConfigError(
                "reputation.dnsbl_zones", list(self.zones), "this service has no lookups"
            )
        return self.blocklists

    def _merge(self, probe: Probe, now: float) -> Change | None:
        """Keep `probe` as its pair's standing; the change it is, if any."""
        key = (probe.address, probe.zone)
        if key not in self._wanted:
            return None  # not asked for: not ours to keep
        old = self._state.get(key)
        same = old is not None and old.state == probe.state
        since = old.since if old is not None and same else now
        new = Standing(
            probe.address, probe.zone, probe.state, since, now, probe.reason, probe.codes
        )
        self._state[key] = new
        self._gauge(new)
        if same or (old is None and probe.state == Listing.CLEAR):
            return None
        return Change(None if old is None else old.state, new)

    def _gauge(self, standing: Standing) -> None:
        if self.metrics is None:
            return
        gauge = self.metrics.reputation_listed.labels(standing.address, standing.zone)
        if standing.state in (Listing.LISTED, Listing.CLEAR):
            gauge.set(1 if standing.state == Listing.LISTED else 0)

    @staticmethod
    def _log(change: Change) -> None:
        after = change.after
        event(
            log,
            "reputation_changed",
            logging.WARNING,
            address=after.address,
            zone=after.zone,
            before=change.before.value if change.before is not None else "",
            after=after.state.value,
            reason=after.reason,
            codes=",".join(after.codes),
        )

    async def _tell(self, changes: list[Change]) -> None:
        if not changes:
            return
        for hook in self._hooks:
            try:
                await hook(changes)
            except Exception:
                event(log, "reputation_hook_failed", logging.ERROR, exc_info=True)
