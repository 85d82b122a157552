"""A circuit breaker: whether a backing service may be tried now, or only probed.

`Breaker` is closed while the service answers: callers try it. A failure
opens it (`trip`): callers skip the service and answer from what they hold,
and only a background probe tries it again, at most every `probe_interval`
seconds of the injected clock's monotonic time (`probe_due`, `probing`). A
success closes it (`reset`). `trip` and `reset` say whether the state
changed, so the caller logs one line per change, not one per call. Pure
bookkeeping: no I/O, no tasks, never raises; one event loop uses it.
"""

from __future__ import annotations

from ugem.core.clock import Clock

PROBE_INTERVAL = 2.0  # seconds between two probes of a service found down


class Breaker:
    def __init__(self, clock: Clock, probe_interval: float = PROBE_INTERVAL) -> None:
        self.clock = clock
        self.probe_interval = probe_interval
        self._opened_at: float | None = None  # monotonic time of the trip; None: closed
        self._probed_at = 0.0
        self.reason = ""  # the last failure's words, while open

    @property
    def closed(self) -> bool:
        return self._opened_at is None

    def open_for(self) -> float:
        """Seconds since the breaker opened; 0 while closed."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.clock.monotonic() - self._opened_at)

    def trip(self, reason: str) -> bool:
        """A failure: open (or stay open with the new reason); True if it was closed."""
        was_closed = self._opened_at is None
        now = self.clock.monotonic()
        if was_closed:
            self._opened_at = now
        self._probed_at = now  # the failure was a try: the next probe waits its interval
        self.reason = reason
        return was_closed

    def reset(self) -> bool:
        """A success: close; True if it was open."""
        was_open = self._opened_at is not None
        self._opened_at, self.reason = None, ""
        return was_open

    def probe_due(self) -> bool:
        """Whether a probe may try the service now (always, while closed)."""
        if self._opened_at is None:
            return True
        return self.clock.monotonic() - self._probed_at >= self.probe_interval

    def probing(self) -> None:
        """A probe starts now: the next one waits `probe_interval`."""
        self._probed_at = self.clock.monotonic()
