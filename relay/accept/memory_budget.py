"""A node-wide budget of bytes for message text held in memory while it is received.

Each DATA in progress holds its text in memory until the message is queued.
Without a bound, the node's memory grew with the number of clients sending
large messages at once (60 parallel 24 MB messages: 5 GB). `MemoryBudget`
is the one counter every session of a listener shares: a session takes what
it buffers (`take`, in the chunks it reads) and gives it all back when its
message is queued or refused (`give`). A `take` that would pass the limit is
refused, never waited for (a waiting sender would hold its share for as long
as it likes, and all of them waiting would never end): that session stops
buffering, reads the rest of the message to its end, and the client gets
452 4.3.1 to try again later, as with a full spool.

Promise: the text buffered by all sessions together is at most `limit`
bytes, whatever the number or size of messages; what the accept path makes
of it (un-stuffing, the checks, the signature, the spool's copy) is a small
multiple of that (see README, "Limits"). One event loop uses it: no locks.
"""

from __future__ import annotations


class MemoryBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self.refusals = 0  # takes refused since start (one per message refused)

    def take(self, size: int) -> bool:
        """Reserve `size` bytes; False (nothing reserved) when that would pass the limit."""
        if self.in_use + size > self.limit:
            self.refusals += 1
            return False
        self.in_use += size
        return True

    def give(self, size: int) -> None:
        """Return `size` bytes taken before."""
        self.in_use = max(0, self.in_use - size)


UNLIMITED = MemoryBudget(1 << 62)  # for readers outside a listener (tests, tools)
