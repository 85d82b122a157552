"""Every worker's spool as the queue service sees it: `MailQueue` over several `Spool`s.

`SpoolQueue(*spools, others=files)` implements
`ugem.core.services.mailqueue.MailQueue` over the spools given (open; their
owner closes them) and, with `others`, the spool files of other processes
(`SpoolFiles`): found again and opened for each call, without recovery, as a
second process beside a running node opens them (SQLite's locks keep the
edits safe; each owner sees them on its next scan), and closed when the call
ends, however it ends. `list` merges the spools' lists in the order each
gives (by queue id, which sorts by time) and keeps the limit (`after` an id
and `received_by` a time select as `Spool.list` does), `count` adds up theirs; `get`, and
hold, release, retry and delete by ids, find the spool that holds each id and
act there (an id no spool holds is left alone: it counts 0); by connection,
or retrying all deferred mail, they act on every spool. It converts
`QueuedMessage` to the service's `MailItem` and the service's string states to
`QueueState`; it adds no rule of its own (those are `QueueService`'s).
It is also a drain's receiving end (`ugem.core.services.transfer.Intake`):
`adopt` makes a message handed over by another node durable in the first
spool given (the worker's own), unless some spool holds or recently took its
id (then False), and `backlog` is the number of messages in the spools given.

`open_spools(paths, ...)` opens spool files that way for the length of a
block (the CLI's: every worker's, `relay.queue.spool.spool_paths`);
`node_queue(config, own)` is a node worker's queue: its own live spool and
every other worker's spool file that exists (`<data_dir>/spool/queue.db`,
`queue-w<i>.db`), so the admin API of any worker of `ugem serve --workers N`
sees and edits the whole queue. Spool errors pass through as they are
(`SpoolError`): a spool file that cannot be opened or read fails the call.
"""

from __future__ import annotations

import builtins
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from relay.queue.message import QueuedMessage, QueueState
from relay.queue.spool import Spool, spool_paths
from ugem.core.clock import Clock
from ugem.core.config import Config
from ugem.core.metrics import Metrics
from ugem.core.services.mailqueue import MailItem

PAGE = 1000  # messages deleted per round of a purge

Edit = Callable[[Spool, builtins.list[str]], Awaitable[int]]  # (spool, its ids) -> count


@contextlib.asynccontextmanager
async def open_spools(
    paths: Sequence[Path], clock: Clock, max_size_mb: int = 0, metrics: Metrics | None = None
) -> AsyncIterator[builtins.list[Spool]]:
    """The spool files at `paths`, opened without recovery (created if missing), in
    order; all closed when the block ends. `metrics` takes their gauges (not a node's)."""
    metrics = metrics or Metrics()
    async with contextlib.AsyncExitStack() as stack:
        spools: list[Spool] = []
        for path in paths:
            spool = Spool(path, clock, metrics, max_size_mb=max_size_mb)
            stack.push_async_callback(spool.close)
            await spool.open(recover=False)
            spools.append(spool)
        yield spools


@dataclass
class SpoolFiles:
    """Spool files of other processes: `find()` names them anew for each call."""

    find: Callable[[], Sequence[Path]]
    clock: Clock
    max_size_mb: int = 0
    metrics: Metrics = field(default_factory=Metrics)  # theirs, not the node's gauges

    def opened(self) -> contextlib.AbstractAsyncContextManager[builtins.list[Spool]]:
        return open_spools(self.find(), self.clock, self.max_size_mb, self.metrics)


class SpoolQueue:
    def __init__(self, *spools: Spool, others: SpoolFiles | None = None) -> None:
        self.spools = spools
        self.others = others

    @contextlib.asynccontextmanager
    async def _all(self) -> AsyncIterator[builtins.list[Spool]]:
        """The spools given and, for this call, the other processes' opened."""
        if self.others is None:
            yield list(self.spools)
            return
        async with self.others.opened() as theirs:
            yield [*self.spools, *theirs]

    async def list(
        self,
        state: str | None,
        connection: str | None,
        limit: int,
        after: str | None = None,
        received_by: float | None = None,
    ) -> builtins.list[MailItem]:
        wanted = None if state is None else QueueState(state)
        async with self._all() as spools:
            lists = [await s.list(wanted, connection, limit, after, received_by) for s in spools]
        merged = heapq.merge(*lists, key=lambda m: m.id)
        return [item(m) for m in itertools.islice(merged, limit)]

    async def count(
        self, state: str | None, connection: str | None, received_by: float | None = None
    ) -> int:
        wanted = None if state is None else QueueState(state)
        async with self._all() as spools:
            return sum([await s.count(wanted, connection, received_by) for s in spools])

    async def get(self, queue_id: str, with_text: bool) -> MailItem | None:
        async with self._all() as spools:
            for spool in spools:
                msg = await spool.get(queue_id, with_data=with_text)
                if msg is not None:
                    return item(msg)
        return None

    async def hold(self, ids: builtins.list[str], reason: str) -> int:
        return await self._by_owner(ids, lambda spool, own: spool.hold(own, reason=reason))

    async def release(self, ids: builtins.list[str] | None, connection: str | None) -> int:
        if ids is None:
            return await self._on_all(lambda spool: spool.release(connection=connection))
        return await self._by_owner(ids, lambda spool, own: spool.release(own))

    async def retry(self, ids: builtins.list[str] | None) -> int:
        if ids is None:
            return await self._on_all(lambda spool: spool.retry(None))
        return await self._by_owner(ids, lambda spool, own: spool.retry(own))

    async def delete(self, ids: builtins.list[str]) -> int:
        return await self._by_owner(ids, lambda spool, own: spool.delete(own))

    async def purge_held(self, connection: str) -> int:
        async def purge(spool: Spool) -> int:
            total = 0
            while held := await spool.list(QueueState.HELD, connection, PAGE):
                total += await spool.delete([m.id for m in held])
            return total

        return await self._on_all(purge)

    async def adopt(self, mail: MailItem, keep: float) -> bool:
        async with self._all() as spools:
            for spool in spools[1:]:
                if await spool.had(mail.id, keep):
                    return False
            return await spools[0].adopt(message(mail), keep=keep)

    def backlog(self) -> int:
        return sum(spool.size() for spool in self.spools)

    async def _on_all(self, edit: Callable[[Spool], Awaitable[int]]) -> int:
        async with self._all() as spools:
            return sum([await edit(spool) for spool in spools])

    async def _by_owner(self, ids: Sequence[str], edit: Edit) -> int:
        """`edit` each spool with the ids it holds (none for ids no spool holds)."""
        total, left = 0, list(dict.fromkeys(ids))
        async with self._all() as spools:
            for spool in spools:
                if not left:
                    break
                own = [i for i in left if await spool.get(i, with_data=False) is not None]
                if own:
                    total += await edit(spool, own)
                    taken = set(own)
                    left = [i for i in left if i not in taken]
        return total


def node_queue(config: Config, own: Spool, clock: Clock) -> SpoolQueue:
    """A node worker's queue: its live spool and every other worker's spool file."""

    def others() -> list[Path]:
        return [p for p in spool_paths(config) if p != own.path and p.exists()]

    return SpoolQueue(own, others=SpoolFiles(others, clock, config.spool.max_size_mb))


def message(mail: MailItem) -> QueuedMessage:
    """The service's `MailItem` (with its text) as the spool's `QueuedMessage`."""
    return QueuedMessage(
        id=mail.id,
        sender=mail.sender,
        rcpts=list(mail.rcpts),
        data=mail.text,
        size=mail.size,
        connection=mail.connection,
        client_ip=mail.client_ip,
        received_at=mail.received_at,
        state=QueueState(mail.state),
        attempts=mail.attempts,
        next_attempt=mail.next_attempt,
        last_error=mail.last_error,
        hold_reason=mail.hold_reason,
        original_rcpts=list(mail.original_rcpts),
    )


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
