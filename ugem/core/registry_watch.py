"""Fail-static: a node relays on the registry it last knew while its store is down.

`StoreWatch` guards one `ugem.core.registry.Registry` (its `watch`). The
store is in one of three states: up; unreachable (a call failed or did not
answer in time); refused (it answers, but holds what may not replace the
registry's view: `ugem.core.store_trust`). While it is not up the registry's
last view serves, and the circuit breaker (`ugem.core.breaker`) keeps the
SMTP path off the store entirely.

- `start()` (a node's start) takes the copy on disk, if any, then syncs under
  the store's own timeout. If the store is unreachable or refused and a copy
  no older than `max_stale` is held, that copy serves (degraded); with no
  copy, or one too old, the store's error is raised and the node does not
  start. A damaged copy is logged and ignored.
- `relay_sync()` (the SMTP path, at MAIL) while the breaker is closed: one
  sync at a time, shared by every session that asks meanwhile, waited for at
  most `relay_timeout` seconds (the sync goes on in the background; its
  outcome counts); on a local store (SQLite, `Store.local`: its calls never
  yield, so no wait could be cut short) the sync is simply run, and only when
  the store's change mark moved since the last good sync (`Store.change_mark`:
  two stat calls instead of a read transaction at every MAIL). A failure, a
  refusal or no answer in time opens the breaker. While it is open, no store
  call at all. Answers whether the view may serve: always while the store is
  up, else while the view is no older than `max_stale` (beyond it the caller
  refuses mail with 451). Never raises a StoreError.
- `probe()` (the node's background step, every second): a sync while the
  breaker is closed, or when a probe is due while it is open (every
  `probe_interval` seconds); a success closes it. Never raises a StoreError.
- `status()` and `readiness()` say what `/readyz` shows: ready, degraded
  (the state, why, the age of the view) or, beyond `max_stale`, not ready.
- `require_store()` raises StoreError, naming the state and why, for a change
  that needs the store (an operator's suspension) while it is not up.

The view's age is the time since the store last confirmed it, by the
registry's clock. Logs, one line per change of state, never per message:
`store_unreachable`, `store_refused` and `store_recovered` (WARNING, with the
copy's age and what was seen), `registry_copy_too_old` (WARNING, when a
degraded view crosses `max_stale`), `registry_sync_error` (ERROR with its
traceback: a bug, not the store; the state is left as it was).
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Protocol

from ugem.core.breaker import PROBE_INTERVAL, Breaker
from ugem.core.clock import Clock
from ugem.core.errors import StoreError, StoreRefused
from ugem.core.log import event
from ugem.core.metrics import Metrics
from ugem.core.registry_copy import RegistryCopy
from ugem.core.tasks import cancel_and_wait

log = logging.getLogger(__name__)

UP, UNREACHABLE, REFUSED = "up", "unreachable", "refused"
TROUBLE_EVENTS = {UNREACHABLE: "store_unreachable", REFUSED: "store_refused"}
RELAY_TIMEOUT = 0.5  # seconds (the defaults of [store] relay_timeout and max_stale)
MAX_STALE = 6 * 3600.0


@dataclass(frozen=True)
class Freshness:
    relay_timeout: float = RELAY_TIMEOUT  # the SMTP path's longest wait on the store
    max_stale: float = MAX_STALE  # the oldest view a degraded node relays on
    probe_interval: float = PROBE_INTERVAL  # between two probes of a store found down


class Watched(Protocol):
    """What the watch needs of the registry."""

    confirmed_at: float | None
    generation: str | None

    @property
    def version(self) -> int | None: ...

    async def sync(self) -> None: ...

    def change_mark(self) -> object | None: ...

    def load_copy(self) -> RegistryCopy | None: ...


@dataclass(frozen=True)
class StoreStatus:
    """The store as a node sees it, and the view it relays on."""

    state: str  # up, unreachable, refused
    reason: str  # what was seen ("" while up)
    copy_age: float | None  # seconds since the store last confirmed the view; None: no view
    max_stale: float

    @property
    def degraded(self) -> bool:
        return self.state != UP

    @property
    def serving(self) -> bool:
        """Whether the view may serve mail: the store is up, or the view is fresh enough."""
        age = self.copy_age
        return self.state == UP or (age is not None and age <= self.max_stale)


class StoreWatch:
    def __init__(
        self, registry: Watched, clock: Clock, freshness: Freshness, bounded: bool = True
    ) -> None:
        self.registry = registry
        self.bounded = bounded  # wait at most relay_timeout (a store across a network)
        self.clock = clock
        self.freshness = freshness
        self.breaker = Breaker(clock, freshness.probe_interval)
        self.state = UP
        self._since = 0.0  # Unix time the state left up
        self._too_old_told = False
        self._inflight: asyncio.Task[None] | None = None
        self._synced_mark: object | None = None  # the store's mark at the last good sync

    # -- the node's start and stop -------------------------------------------------------

    async def start(self) -> None:
        """Take the copy on disk and sync; StoreError if neither the store nor a copy serves."""
        copy = self._load_copy()
        try:
            await self.registry.sync()
        except StoreError as exc:
            age = self.age()
            if copy is None or age > self.freshness.max_stale:
                raise StoreError(_no_start(exc, copy, age, self.freshness.max_stale)) from exc
            self._trouble(REFUSED if isinstance(exc, StoreRefused) else UNREACHABLE, str(exc))

    def _load_copy(self) -> RegistryCopy | None:
        try:
            return self.registry.load_copy()
        except StoreError as exc:
            event(log, "registry_copy_unusable", logging.WARNING, error=str(exc))
            return None

    async def close(self) -> None:
        if self._inflight is not None:
            await cancel_and_wait(self._inflight)

    def export(self, metrics: Metrics) -> None:
        """Let `metrics` read the store's state and the view's age when scraped."""
        metrics.store_up.set_function(lambda: 1.0 if self.state == UP else 0.0)
        metrics.registry_copy_age.set_function(self._age_or_nan)

    def _age_or_nan(self) -> float:
        age = self.age()
        return age if math.isfinite(age) else math.nan

    # -- the SMTP path and the background probe ------------------------------------------

    async def relay_sync(self) -> bool:
        """Sync unless the store is known down, waiting `relay_timeout` at most; may the view
        serve?"""
        if self.breaker.closed and not self.bounded:  # a local store answers at once:
            mark = self.registry.change_mark()  # taken first: a write after it moves it
            if mark is None or mark != self._synced_mark:
                await self._attempt()  # a task and a timer would cost 50 us a MAIL for nothing
                self._synced_mark = mark if self.state == UP else None
        elif self.breaker.closed:
            task = self._attempt_task()
            done, _ = await asyncio.wait({task}, timeout=self.freshness.relay_timeout)
            if not done:
                self._trouble(UNREACHABLE, f"no answer in {self.freshness.relay_timeout:g} s")
        return self._serving()

    async def probe(self) -> None:
        """The background step: sync while up, or when a probe is due while down."""
        if self.breaker.probe_due():
            self.breaker.probing()
            await asyncio.wait({self._attempt_task()})
        self._serving()

    def _attempt_task(self) -> asyncio.Task[None]:
        """The sync under way, or a new one: one at a time, whoever asks."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self._attempt(), name="registry-sync")
        return self._inflight

    async def _attempt(self) -> None:
        age = self.age()
        try:
            await self.registry.sync()
        except StoreRefused as exc:
            self._trouble(REFUSED, str(exc))
        except StoreError as exc:
            self._trouble(UNREACHABLE, str(exc))
        except Exception:
            event(log, "registry_sync_error", logging.ERROR, exc_info=True)
        else:
            self._recovered(age)

    # -- the state -----------------------------------------------------------------------

    def age(self) -> float:
        """Seconds since the store last confirmed the view (infinite: no view)."""
        confirmed = self.registry.confirmed_at
        return math.inf if confirmed is None else max(0.0, self.clock.now() - confirmed)

    def _trouble(self, state: str, reason: str) -> None:
        self.breaker.trip(reason)
        if state == self.state:
            return
        if self.state == UP:
            self._since = self.clock.now()
        self.state = state
        event(
            log,
            TROUBLE_EVENTS[state],
            logging.WARNING,
            reason=reason,
            copy_age=_seconds(self.age()),
            copy_generation=self.registry.generation or "",
            copy_version=self.registry.version,
            max_stale=self.freshness.max_stale,
        )

    def _recovered(self, age: float) -> None:
        self.breaker.reset()
        if self.state == UP:
            return
        was, self.state, self._too_old_told = self.state, UP, False
        event(
            log,
            "store_recovered",
            logging.WARNING,
            was=was,
            down_for=_seconds(self.clock.now() - self._since),
            copy_age=_seconds(age),
            version=self.registry.version,
        )

    def _serving(self) -> bool:
        status = self.status()
        if not status.serving and not self._too_old_told:
            self._too_old_told = True
            event(
                log,
                "registry_copy_too_old",
                logging.WARNING,
                state=status.state,
                copy_age=_seconds(self.age()),
                max_stale=self.freshness.max_stale,
                advice="connected servers get 451 until the store is back (ugem store restore)",
            )
        return status.serving

    def status(self) -> StoreStatus:
        age = self.age()
        return StoreStatus(
            self.state,
            self.breaker.reason if self.state != UP else "",
            age if math.isfinite(age) else None,
            self.freshness.max_stale,
        )

    def readiness(self) -> tuple[bool, str]:
        """(ready, reason) for `/readyz`: ok; degraded but serving; or not ready."""
        status = self.status()
        if not status.degraded:
            return True, "ok"
        age = "no" if status.copy_age is None else f"{status.copy_age:.0f} s old"
        where = f"store {status.state}: {status.reason}; registry copy {age}"
        if status.serving:
            return True, f"degraded: {where}, relaying on it"
        return False, f"{where}, over [store] max_stale {status.max_stale:g} s"

    def require_store(self) -> None:
        """StoreError, saying why, while the store is not up: the change must wait."""
        if self.state == UP:
            return
        raise StoreError(
            f"the store is {self.state} ({self.breaker.reason}); changes that need it wait "
            f"until it is back (this node relays on its registry copy meanwhile)"
        )


def _seconds(value: float) -> float | None:
    return round(value, 1) if math.isfinite(value) else None


def _no_start(exc: StoreError, copy: RegistryCopy | None, age: float, max_stale: float) -> str:
    if copy is None:
        return f"{exc}; and there is no registry copy on disk to relay on"
    text = f"{exc}; and the registry copy on disk is {age:.0f} s old, over max_stale {max_stale:g}"
    if isinstance(exc, StoreRefused):
        text += " (ugem store restore puts the copy back; deleting it takes the store as it is)"
    return text
