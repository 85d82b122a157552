"""A message in the queue: its envelope, its state and (for its first attempt) its text.

`QueuedMessage` is what the spool stores, the scheduler schedules and the
deliverer sends. `data` is the message text exactly as it will go out (the
relay's `Received:` header already prepended); it is kept in memory for the
first delivery attempt and is `None` when read back from the spool without it.
`new_queue_id()` gives ids that sort by time and do not collide across nodes.
Their random part comes from a generator seeded from the kernel when the
module loads and again in every forked child (workers never share a
sequence): a system call for each id (os.urandom) would let a busy thread of
the spool take the GIL from the event loop at every message (issue 17's
profile). The ids name messages; they are not secrets.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from enum import StrEnum

_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZ"  # no vowels: no words in ids


class QueueState(StrEnum):
    ACTIVE = "active"  # due for delivery now (new, or released)
    DEFERRED = "deferred"  # waiting for its next attempt
    HELD = "held"  # not delivered until released (operator or suspended connection)


def _encode(number: int, width: int) -> str:
    out = []
    for _ in range(width):
        number, digit = divmod(number, len(_ALPHABET))
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


QUEUE_ID_LENGTH = 19
_RANDOM_CHARS = 10
_RANDOM_BITS = 64  # reduced modulo 31**10 (< 2**50) by _encode: uniform within 2**-14
_random = random.Random(os.urandom(32))


def _reseed() -> None:
    _random.seed(os.urandom(32))


os.register_at_fork(after_in_child=_reseed)


def new_queue_id(now: float | None = None) -> str:
    """19 characters: 9 of milliseconds since the epoch (they sort by time), 10 random.

    31**10 (8.2e14) random values a millisecond: k ids made in one millisecond,
    across all nodes, collide with a chance of about k**2 / 1.6e15 (1e-5 for
    k = 100,000); a collision fails that one commit (451), it loses nothing.
    """
    ms = int((time.time() if now is None else now) * 1000)
    return _encode(ms, 9) + _encode(_random.getrandbits(_RANDOM_BITS), _RANDOM_CHARS)


@dataclass
class QueuedMessage:
    id: str
    sender: str  # "" is the null sender
    rcpts: list[str]  # recipients not yet delivered or bounced
    data: bytes | None
    size: int
    connection: str  # origin connection id; "" for inbound mail from the internet
    client_ip: str
    received_at: float
    state: QueueState = QueueState.ACTIVE
    attempts: int = 0
    next_attempt: float = 0.0
    last_error: str = ""
    hold_reason: str = ""
    original_rcpts: list[str] = field(default_factory=list)

    @property
    def is_bounce(self) -> bool:
        return self.sender == ""
