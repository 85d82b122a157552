"""The relay's queue as the notices see it: `ugem.core.services.notices.Outbox` implementations.

`queued(mail, now)` turns an `OutgoingMail` into a `QueuedMessage` that
originates at the gateway itself (no connection, no client address, like a
bounce); both outboxes build their messages with it. `SchedulerOutbox` (the
node) queues it with `Scheduler.enqueue`, so it is durable before `send`
returns and its first attempt starts at once. `SpoolOutbox` (the CLI, a
second process beside a node that may be running) commits it as an ACTIVE
message straight into the node's spool file, opened without recovery on the
first notice: a running node's scheduler finds it on its next scan, a stopped
one on its start. Given a `relay.queue.own_mail.GatewaySigner`, both DKIM-sign the
notice before it is queued (the gateway's own mail never passes SMTP accept,
where the rest is signed); a signing failure queues it unsigned and logs an
ERROR with its queue id. Spool errors pass through as they are (`SpoolError`,
`SpoolFullError`).
"""

from __future__ import annotations

from pathlib import Path

from relay.queue.message import QueuedMessage, new_queue_id
from relay.queue.own_mail import GatewaySigner
from relay.queue.schedule import Scheduler
from relay.queue.spool import Spool
from ugem.core.clock import Clock
from ugem.core.metrics import Metrics
from ugem.core.services.notices import OutgoingMail


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


async def signed(msg: QueuedMessage, signer: GatewaySigner | None) -> QueuedMessage:
    return msg if signer is None else await signer.sign(msg)


class SchedulerOutbox:
    def __init__(
        self, scheduler: Scheduler, clock: Clock, signer: GatewaySigner | None = None
    ) -> None:
        self.scheduler = scheduler
        self.clock = clock
        self.signer = signer

    async def send(self, mail: OutgoingMail) -> str:
        msg = await signed(queued(mail, self.clock.now()), self.signer)
        await self.scheduler.enqueue(msg)
        return msg.id


class SpoolOutbox:
    """Notices committed into the spool file at `path` by another process than the node's.

    `sent` lists (queue id, recipients) of every notice committed; `close()`
    closes the spool if a notice opened it (idempotent).
    """

    def __init__(
        self,
        path: Path,
        clock: Clock,
        max_size_mb: int = 0,
        signer: GatewaySigner | None = None,
    ) -> None:
        self.path = path
        self.clock = clock
        self.max_size_mb = max_size_mb
        self.signer = signer
        self.sent: list[tuple[str, tuple[str, ...]]] = []
        self._spool: Spool | None = None

    async def send(self, mail: OutgoingMail) -> str:
        spool = await self._open()
        msg = await signed(queued(mail, self.clock.now()), self.signer)
        await spool.commit(msg)
        self.sent.append((msg.id, mail.rcpts))
        return msg.id

    async def close(self) -> None:
        spool, self._spool = self._spool, None
        if spool is not None:
            await spool.close()

    async def _open(self) -> Spool:
        if self._spool is None:
            spool = Spool(self.path, self.clock, Metrics(), max_size_mb=self.max_size_mb)
            await spool.open(recover=False)
            self._spool = spool
        return self._spool
