"""Per-destination back-off on rate-limit replies (Postfix's destination concurrency feedback).

A destination (a route key, `relay.deliver.routing.Route.key`: the pool's unit of
sessions) that answers with a rate-limit reply (a 4xx that `ugem.core.reply_class`
classes rate-limited: "421 4.7.28 ... rate limited", "451 4.7.650", "450 ... too
many connections") is given less: `Backoff.report(..., rate_limited=True)` halves
its concurrency (at least 1), pauses it for its spacing and from then on spaces its
attempts by that spacing. The spacing is `[delivery] rate_limit_delay` after one
such reply and doubles with each further one, up to `rate_limit_max_delay`. Each
attempt that delivers (a success: a transaction with a recipient delivered)
undoes one doubling (the spacing is 0 again after as many successes as replies),
and every `rate_limit_recovery` successes give back one session, up to
`concurrency_per_destination`; once both are whole the destination is forgotten.
So with defaults, one 421 leaves a destination alone for 30 s, probes it once,
and after a success lets mail flow at half its concurrency (10 of 20), raised by
one session every 10 successes.

What it promises:

- `admit(key)` is asked before each attempt: `wait` 0.0 means start it now (the
  start is noted for the spacing), else the seconds until the destination takes
  one. A destination that never answered a rate-limit reply costs one dict lookup
  and is admitted at once;
- `limit(key)` is the destination's concurrency now (the pool asks it at each
  session it gives, `relay.deliver.pool`);
- one episode counts once: a report of an attempt admitted before the last cut
  (`Admission.epoch`) is ignored, so the replies to sessions already in flight when
  a destination starts refusing cut its concurrency once, not once each; a
  success of such an attempt does not ease it either;
- memory is bounded: at most MAX_DESTINATIONS destinations are kept (the one left
  alone longest is forgotten first), and one neither admitted nor reported for
  `forget_after` seconds (FORGET_S, or 3 x rate_limit_max_delay if more) starts
  afresh, like Postfix's in-memory queue of an idle destination;
- time is the injected clock's monotonic time; nothing here sleeps or does I/O.

How it fails: it does not; every call is O(1) amortized and never raises. The
state is this process's (one `Backoff` a worker, shared by its deliverer and
scheduler), and its cuts are the node's: a cut made here is handed to `on_cut`
(with several workers, `relay.deliver.backoff_share.SharedCuts` publishes it),
and `heard(key, strikes)` applies another worker's (unless this one knows as
much), so a 421 one worker hears holds the destination back in all of them
within a second; successes ease each worker's own state. A restart forgets it. Changes
are logged at INFO (`destination_rate_limited`, `destination_backoff_ended`), the
steps between at DEBUG; `ugem_delivery_backoff_destinations` counts the
destinations held back now.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NamedTuple

from ugem.core.clock import Clock
from ugem.core.config import DeliveryConfig
from ugem.core.log import event
from ugem.core.metrics import Metrics

log = logging.getLogger(__name__)

CUT: Final = 2  # a rate-limit reply divides a destination's concurrency by this (at least 1)
GROWTH: Final = 2.0  # each further rate-limit reply multiplies the spacing by this
FORGET_S: Final = 3600.0  # a destination left alone this long starts afresh
MAX_DESTINATIONS: Final = 10_000  # destinations kept at most (the oldest forgotten first)


class Admission(NamedTuple):
    """Whether an attempt may start: `wait` 0.0 yes, else seconds to wait; `epoch` to report
    with; `spacing` the destination's spacing now (0.0: none)."""

    wait: float
    epoch: int
    spacing: float


@dataclass(slots=True)
class _State:
    limit: int  # sessions allowed now
    strikes: int = 0  # rate-limit replies not yet undone by a success
    epoch: int = 0  # the number of its last cut (among all destinations' cuts)
    paused_until: float = 0.0  # monotonic: no attempt starts before (after a cut)
    last_start: float = float("-inf")  # monotonic: the last attempt admitted
    successes: int = 0  # since the last session given back
    touched: float = 0.0  # monotonic: last admitted or reported


class Backoff:
    """The back-off of every destination of one process (see the module's docstring)."""

    def __init__(
        self, config: DeliveryConfig, clock: Clock, metrics: Metrics | None = None
    ) -> None:
        self.clock = clock
        self.metrics = metrics
        self.concurrency = config.concurrency_per_destination
        self.base = config.rate_limit_delay
        self.max_delay = max(config.rate_limit_max_delay, config.rate_limit_delay)
        self.recovery = config.rate_limit_recovery
        self.forget_after = max(FORGET_S, 3 * self.max_delay)
        self._states: OrderedDict[str, _State] = OrderedDict()  # least recently touched first
        self._cuts = 0  # cuts of every destination so far: the epochs
        self.on_cut: Callable[[str, int], None] | None = None  # tells the other workers

    def held_back(self) -> int:
        """Destinations held back now (no `__len__`: an empty Backoff must not be falsy)."""
        return len(self._states)

    def limit(self, key: str) -> int:
        """Sessions the destination `key` may have at once now."""
        state = self._states.get(key)
        return self.concurrency if state is None else state.limit

    def spacing(self, key: str) -> float:
        """Seconds between two attempts to `key` now (0.0: not spaced)."""
        state = self._states.get(key)
        return 0.0 if state is None else self._spacing(state)

    def admit(self, key: str) -> Admission:
        """Whether an attempt to `key` may start now; if so, its start is noted."""
        state = self._live(key)
        if state is None:
            return Admission(0.0, self._cuts, 0.0)
        now = self.clock.monotonic()
        spacing = self._spacing(state)
        ready = max(state.paused_until, state.last_start + spacing)
        if now < ready:
            return Admission(ready - now, state.epoch, spacing)
        state.last_start = now
        return Admission(0.0, state.epoch, spacing)

    def heard(self, key: str, strikes: int) -> None:
        """Another worker of the node cut `key` to `strikes` rate-limit replies (the remote
        side limits the node's addresses, not one worker): cut it here too, unless this
        worker knows as much already. Nothing is published again."""
        state = self._live(key)
        if state is not None and state.strikes >= strikes:
            return
        self._cut(key, state, strikes, elsewhere=True)

    def report(self, key: str, epoch: int, rate_limited: bool, delivered: bool) -> None:
        """What an attempt admitted at `epoch` heard: a rate-limit reply, a delivery, both or
        neither (a rate-limit reply decides)."""
        state = self._live(key)
        if state is not None and epoch < state.epoch:
            return  # admitted before the last cut: that episode is counted already
        if rate_limited:
            self._cut(key, state)
        elif delivered and state is not None:
            self._ease(key, state)

    # -- the rule --------------------------------------------------------------------------

    def _cut(
        self, key: str, state: _State | None, strikes: int = 0, elsewhere: bool = False
    ) -> None:
        """A rate-limit reply (here, or `elsewhere` with `strikes`): half the sessions, one
        more doubling (or as many as `strikes`), a pause; a cut here is published."""
        if state is None:
            state = self._add(key)
        now = self.clock.monotonic()
        self._cuts += 1
        state.epoch = self._cuts
        state.strikes = min(max(strikes, state.strikes + 1), self._max_strikes())
        state.limit = max(1, state.limit // CUT)
        state.successes = 0
        state.paused_until = now + self._spacing(state)
        event(
            log,
            "destination_rate_limited",
            logging.DEBUG if elsewhere else logging.INFO,
            destination=key,
            concurrency=state.limit,
            spacing=self._spacing(state),
            replies=state.strikes,
            elsewhere=elsewhere,
        )
        if not elsewhere and self.on_cut is not None:
            self.on_cut(key, state.strikes)

    def _ease(self, key: str, state: _State) -> None:
        """A delivery: one doubling undone; a session back every `recovery` of them."""
        state.strikes = max(0, state.strikes - 1)
        state.successes += 1
        if state.successes >= self.recovery and state.limit < self.concurrency:
            state.limit += 1
            state.successes = 0
        if state.strikes == 0 and state.limit >= self.concurrency:
            self._forget(key)
            event(log, "destination_backoff_ended", logging.INFO, destination=key)
            return
        event(
            log,
            "destination_backoff_eased",
            logging.DEBUG,
            destination=key,
            concurrency=state.limit,
            spacing=self._spacing(state),
        )

    def _spacing(self, state: _State) -> float:
        if state.strikes == 0:
            return 0.0
        return min(self.max_delay, self.base * GROWTH ** (state.strikes - 1))

    def _max_strikes(self) -> int:
        """The strikes at which the spacing reaches `max_delay` (more would not lengthen it)."""
        strikes, spacing = 1, self.base
        while spacing < self.max_delay:
            strikes, spacing = strikes + 1, spacing * GROWTH
        return strikes

    # -- keeping the states ----------------------------------------------------------------

    def _live(self, key: str) -> _State | None:
        """The state of `key`, touched now; None when it has none (or it was forgotten)."""
        now = self.clock.monotonic()
        self._sweep(now)
        state = self._states.get(key)
        if state is not None:
            state.touched = now
            self._states.move_to_end(key)
        return state

    def _add(self, key: str) -> _State:
        while len(self._states) >= MAX_DESTINATIONS:
            self._forget(next(iter(self._states)))
        state = self._states[key] = _State(self.concurrency, touched=self.clock.monotonic())
        self._gauge()
        return state

    def _sweep(self, now: float) -> None:
        """Forget the destinations left alone for `forget_after` seconds (oldest first)."""
        while self._states:
            key, oldest = next(iter(self._states.items()))
            if now - oldest.touched < self.forget_after:
                return
            self._forget(key)

    def _forget(self, key: str) -> None:
        self._states.pop(key, None)
        self._gauge()

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.backoff_destinations.set(len(self._states))
