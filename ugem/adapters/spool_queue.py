"""Every worker's spool as the queue service sees it: `MailQueue` over several `Spool`s.

`SpoolQueue(*spools, others=files)` implements
`ugem.core.services.mailqueue.MailQueue` over the spools given (open; their
owner closes them) and, with `others`, the spool files of other processes
(`SpoolFiles`): found again and opened for each call, without recovery, as a
second process beside a running node opens them (SQLite's locks keep the
edits safe; each owner sees them on its next scan), and closed when the call
ends, however it ends. `list` merges the spools' lists of what a filter
(`ugem.core.queue_filter.MailFilter`) selects in the order each gives (by queue
id, which sorts by time) and keeps the limit (`after` an id as `Spool.list`
does), `count` adds up theirs; `shape` adds up their counts per key and age
bucket (`Spool.shape`, in SQL: memory in proportion to the keys, never to the
messages). `get`, and hold, release, retry, delete and bounce by ids, find the
spool that holds each id and act there (an id no spool holds is left alone: it
counts 0); by connection, or retrying all deferred mail, they act on every
spool. A bounce (`Returner`, given as `returner`) queues the relay's DSN of a
returned message (`relay.queue.bounce.returned`, DKIM-signed as the node signs
its own mail) in the message's own spool, then deletes the message there; a
crash between the two leaves both (a duplicate DSN, never a lost one), and a
message whose delivery is under way meanwhile may also reach some recipients.
It converts
`QueuedMessage` to the service's `MailItem` and the service's string states to
`QueueState`; it adds no rule of its own (those are `QueueService`'s).
It is also a drain's receiving end (`ugem.core.services.transfer.Intake`):
`adopt` makes a message handed over by another node durable in the first
spool given (the worker's own), unless some spool holds or recently took its
id (then False), and `backlog` is the number of messages in the spools given.

`open_spools(paths, ...)` opens spool files that way for the length of a
block (the CLI's: every worker's, `relay.queue.spool.spool_paths`);
`node_queue(config, own)` is a node worker's queue (returning mail as
`[node] hostname`): its own live spool and
every other worker's spool file that exists (`<data_dir>/spool/queue.db`,
`queue-w<i>.db`), so the admin API of any worker of `ugem serve --workers N`
sees and edits the whole queue. Spool errors pass through as they are
(`SpoolError`): a spool file that cannot be opened or read fails the call.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from relay.queue.bounce import returned
from relay.queue.message import QueuedMessage, QueueState
from relay.queue.own_mail import GatewaySigner, gateway_signer
from relay.queue.spool import Spool, spool_paths
from ugem.core.clock import Clock
from ugem.core.config import Config
from ugem.core.errors import ConflictError
from ugem.core.metrics import Metrics
from ugem.core.queue_filter import MailFilter
from ugem.core.queue_shape import AGE_EDGES, By
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


@dataclass(frozen=True)
class Returner:
    """Returns queued mail to its senders: the relay's DSN (`relay.queue.bounce.returned`),
    signed as the node signs its own mail, queued in the message's own spool before the
    message is deleted there (a crash between the two leaves both: a duplicate, no loss)."""

    hostname: str
    clock: Clock
    signer: GatewaySigner | None = None

    async def give_back(self, spool: Spool, ids: builtins.list[str], reason: str) -> int:
        """Each of `ids` (held by `spool`) returned with a DSN and deleted; how many."""
        now, dsns = self.clock.now(), []
        for queue_id in ids:  # one text at a time in memory: a DSN keeps only its headers
            msg = await spool.get(queue_id, with_data=True)
            dsn = None if msg is None else returned(msg, reason, self.hostname, now)
            if dsn is not None:  # None for a bounce (never bounced) or mail gone meanwhile
                dsns.append(dsn if self.signer is None else await self.signer.sign(dsn))
        await asyncio.gather(*(spool.commit(dsn) for dsn in dsns))  # one group commit
        return await spool.delete(ids)

    @classmethod
    def of(cls, config: Config, clock: Clock) -> Returner:
        return cls(config.hostname, clock, gateway_signer(config, clock))


class SpoolQueue:
    def __init__(
        self, *spools: Spool, others: SpoolFiles | None = None, returner: Returner | None = None
    ) -> None:
        self.spools = spools
        self.others = others
        self.returner = returner  # for bounces; None: the queue makes no DSNs

    @contextlib.asynccontextmanager
    async def _all(self) -> AsyncIterator[builtins.list[Spool]]:
        """The spools given and, for this call, the other processes' opened."""
        if self.others is None:
            yield list(self.spools)
            return
        async with self.others.opened() as theirs:
            yield [*self.spools, *theirs]

    async def list(
        self, where: MailFilter, limit: int, after: str | None = None
    ) -> builtins.list[MailItem]:
        async with self._all() as spools:
            lists = [await s.list(limit=limit, after=after, where=where) for s in spools]
        merged = heapq.merge(*lists, key=lambda m: m.id)
        return [item(m) for m in itertools.islice(merged, limit)]

    async def count(self, where: MailFilter) -> int:
        async with self._all() as spools:
            return sum([await s.count(where=where) for s in spools])

    async def shape(
        self, by: By, where: MailFilter, now: float
    ) -> tuple[dict[str, builtins.list[int]], builtins.list[int]]:
        edges = [minutes * 60.0 for minutes in AGE_EDGES]
        tallies: dict[str, list[int]] = {}
        totals = [0] * (len(edges) + 1)
        async with self._all() as spools:
            for spool in spools:
                rows, buckets = await spool.shape(by, edges, now, where)
                for key, bucket, n in rows:
                    tallies.setdefault(key, [0] * len(totals))[bucket] += n
                for bucket, n in buckets:
                    totals[bucket] += n
        return tallies, totals

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

    async def bounce(self, ids: builtins.list[str], reason: str) -> int:
        returner = self.returner
        if returner is None:
            raise ConflictError("bounce: this queue cannot make DSNs (no host name given)")
        return await self._by_owner(ids, lambda spool, own: returner.give_back(spool, own, reason))

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
                own = await spool.holding(left)
                if own:
                    total += await edit(spool, own)
                    taken = set(own)
                    left = [i for i in left if i not in taken]
        return total


def node_queue(config: Config, own: Spool, clock: Clock) -> SpoolQueue:
    """A node worker's queue: its live spool and every other worker's spool file."""

    def others() -> list[Path]:
        return [p for p in spool_paths(config) if p != own.path and p.exists()]

    others_files = SpoolFiles(others, clock, config.spool.max_size_mb)
    return SpoolQueue(own, others=others_files, returner=Returner.of(config, clock))


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
