"""The spool as the admin services see it: `ugem.core.services.mailqueue.MailQueue` over `Spool`.

A thin adapter: it converts `QueuedMessage` to the service's `MailItem` and
the service's string states to `QueueState`; it adds no rule of its own.
Spool errors pass through as they are (`SpoolError`).
"""

from __future__ import annotations

import builtins

from relay.queue.message import QueuedMessage, QueueState
from relay.queue.spool import Spool
from ugem.core.services.mailqueue import MailItem

PAGE = 1000  # messages deleted per round of a purge


class SpoolQueue:
    def __init__(self, spool: Spool) -> None:
        self.spool = spool

    async def list(
        self, state: str | None, connection: str | None, limit: int
    ) -> builtins.list[MailItem]:
        found = await self.spool.list(
            state=None if state is None else QueueState(state), connection=connection, limit=limit
        )
        return [item(m) for m in found]

    async def get(self, queue_id: str, with_text: bool) -> MailItem | None:
        msg = await self.spool.get(queue_id, with_data=with_text)
        return None if msg is None else item(msg)

    async def hold(self, ids: builtins.list[str], reason: str) -> int:
        return await self.spool.hold(ids, reason=reason)

    async def release(self, ids: builtins.list[str] | None, connection: str | None) -> int:
        return await self.spool.release(ids, connection=connection)

    async def retry(self, ids: builtins.list[str]) -> int:
        return await self.spool.retry(ids)

    async def delete(self, ids: builtins.list[str]) -> int:
        return await self.spool.delete(ids)

    async def purge_held(self, connection: str) -> int:
        total = 0
        while held := await self.spool.list(QueueState.HELD, connection, PAGE):
            total += await self.spool.delete([m.id for m in held])
        return total


def item(msg: QueuedMessage) -> MailItem:
    return MailItem(
        id=msg.id,
        state=str(msg.state),
        sender=msg.sender,
        rcpts=tuple(msg.rcpts),
        original_rcpts=tuple(msg.original_rcpts),
        size=msg.size,
        connection=msg.connection,
        client_ip=msg.client_ip,
        received_at=msg.received_at,
        attempts=msg.attempts,
        next_attempt=msg.next_attempt,
        last_error=msg.last_error,
        hold_reason=msg.hold_reason,
        text=msg.data,
    )
