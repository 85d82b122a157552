"""Throttled connections: which ones the anomaly detector throttles, and which are over their cap.

A THROTTLE verdict (anomaly.detector) holds a connected server near its usual
rate: while it is throttled, its MAIL FROM gets 451 4.7.1
(`relay.replies.THROTTLED`) whenever its recipients of the last 5 minutes
(all of its traffic the detector sees: every worker's and node's with a shared
feed) reach its cap, `cap(usual, warm)` = max(`THROTTLE_FLOOR`,
`THROTTLE_FACTOR` x usual), the usual being what it learned to send per 5
minutes at that hour of the week (a baseline still cold: the floor), taken
when the throttle begins. Mail under the cap is accepted; nothing accepted is
held or refused later. A LIFT verdict, a suspension or a resume ends it.

`ThrottleBoard` is where the two sides meet without importing each other
(DESIGN.md's floors): the enforcer (anomaly.enforce) writes it --
`throttle(c, cap)`, `lift(c)`, and after each event of a throttled connection
`over(c, until)`: over its cap until event time `until` should no more mail
come (0.0: under it), so a server refused for a while is let through again
once its window has emptied, with no event needed -- and the relay reads it
at MAIL FROM through `ThrottleView.refuses(c, now)`; the admin API shows
`throttled(c)`. Memory only, one board a process: with a shared feed every
worker's and node's enforcer sees the same traffic and reaches the same
verdicts, so their boards agree; with the local feed each judges its own
share. A restart forgets the throttles (and the detector, which throttles
again on the next evidence). Every call is O(1); nothing raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

THROTTLE_FACTOR: Final = 1.5  # a throttled connection may send this many times its usual...
THROTTLE_FLOOR: Final = 20.0  # ...and never less than this many recipients per 5 minutes


def cap(usual: float, warm: bool) -> float:
    """Recipients per 5 minutes a throttled connection may send; `usual` is its learned
    recipients per 5 minutes at this hour of the week, `warm` whether it was learned."""
    return max(THROTTLE_FLOOR, THROTTLE_FACTOR * usual) if warm else THROTTLE_FLOOR


class ThrottleView(Protocol):
    """What the relay and the admin API read."""

    def refuses(self, conn_id: str, now: float) -> bool:
        """Whether `conn_id` is throttled and over its cap at `now` (its mail is deferred)."""
        ...

    def throttled(self, conn_id: str) -> bool: ...


@dataclass(slots=True)
class _Entry:
    cap: float  # recipients per 5 minutes
    over_until: float = 0.0  # event time until which it is over its cap; 0.0: under it


class ThrottleBoard:
    """The throttled connections of this process (see the module's docstring)."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def throttle(self, conn_id: str, cap: float) -> None:
        """Throttle `conn_id` to `cap` recipients per 5 minutes (under it until told)."""
        self._entries[conn_id] = _Entry(cap)

    def lift(self, conn_id: str) -> bool:
        """End the throttle of `conn_id`; whether it was throttled."""
        return self._entries.pop(conn_id, None) is not None

    def cap(self, conn_id: str) -> float | None:
        """The cap of `conn_id`, None when it is not throttled."""
        entry = self._entries.get(conn_id)
        return None if entry is None else entry.cap

    def over(self, conn_id: str, until: float) -> None:
        """`conn_id` is over its cap until event time `until` (0.0: it is under it)."""
        entry = self._entries.get(conn_id)
        if entry is not None:
            entry.over_until = until

    def throttled(self, conn_id: str) -> bool:
        return conn_id in self._entries

    def refuses(self, conn_id: str, now: float) -> bool:
        entry = self._entries.get(conn_id)
        return entry is not None and now < entry.over_until
