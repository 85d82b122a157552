"""The relay's queue as the notices see it: `ugem.services.notices.Outbox` over the scheduler.

A thin adapter: it turns an `OutgoingMail` into a `QueuedMessage` that
originates at the gateway itself (no connection, no client address, like a
bounce) and queues it with `Scheduler.enqueue`, so it is durable before
`send` returns and delivered like any other mail. Spool errors pass through
as they are (`SpoolError`, `SpoolFullError`).
"""

from __future__ import annotations

from relay.message import QueuedMessage, new_queue_id
from relay.schedule import Scheduler
from ugem.clock import Clock
from ugem.services.notices import OutgoingMail


def queued(mail: OutgoingMail, now: float) -> QueuedMessage:
    """`mail` as a new message in the queue, from the gateway itself."""
    return QueuedMessage(
        id=new_queue_id(now),
        sender=mail.sender,
        rcpts=list(mail.rcpts),
        data=mail.data,
        size=len(mail.data),
        connection="",
        client_ip="",
        received_at=now,
        original_rcpts=list(mail.rcpts),
    )


class SchedulerOutbox:
    def __init__(self, scheduler: Scheduler, clock: Clock) -> None:
        self.scheduler = scheduler
        self.clock = clock

    async def send(self, mail: OutgoingMail) -> str:
        msg = queued(mail, self.clock.now())
        await self.scheduler.enqueue(msg)
        return msg.id
