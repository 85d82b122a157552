"""Taking over another node's queued mail: the receiving half of a drain.

`TransferService.take(item, source, actor)` makes one message that another
node hands over (its drain, `ugem.core.services.drain`, through the admin
API's `POST /v1/queue/import`) durable in this node's queue under the id it
had there, with its envelope, its schedule (next attempt, attempts so far,
first queued time, which its expiry counts from), its hold and its last error
as they were, and says whether it was `created` now or was here `already`.

The queue is reached through `Intake`, a small protocol the roof implements
over the relay's spool (`ugem.adapters.spool_queue.SpoolQueue`): `adopt` is
durable (fsynced) when it returns, and keeps the id of every message it took
for `keep` seconds (longer than any message may stay queued), so a hand-over
retried after a cut between this commit and the sender's removal is answered
`already` and not queued twice, even when the first copy was delivered since.

Checks, each a `UsageError` naming the field (HTTP 422; the sender keeps the
message and says why): the text within this node's `[smtp] max_message_size`
plus `HEADROOM` for the header fields the relay adds (Received:, a
DKIM-Signature:), `size` equal to the text's length, 1 to `[smtp]
max_recipients` recipients, each address plausible (no space, no control
character, an @, within the lengths of `[smtp]`). Refusals of the node as a
whole: this node is being drained itself (`ConflictError`, 409: also what
keeps a node from draining into itself, which would read as "already have
it" and lose the mail), its queue is over `[smtp] max_queue_backlog` or its
spool is full (`SpoolFullError`, 503); other spool errors pass through
(`SpoolError`, 503). Every message created is audited (`queue.import`, target
its queue id, details: the sending node and the size); an audit that fails
after the commit fails the call, and the sender's retry is then answered
`already`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from ugem.core.clock import Clock
from ugem.core.config import DAY, KIB, Config
from ugem.core.errors import ConflictError, SpoolFullError, UsageError
from ugem.core.metrics import Metrics
from ugem.core.services.audit import AuditLog
from ugem.core.services.mailqueue import STATES, MailItem

HEADROOM = 8 * KIB  # header fields the relay adds after DATA (Received:, DKIM-Signature:)
Taken = Literal["created", "already"]
_BAD = frozenset(" \t\r\n\0<>")


class Intake(Protocol):
    """The spool operations a hand-over needs (implemented by the relay's adapter)."""

    async def adopt(self, item: MailItem, keep: float) -> bool:
        """Make `item` durable under its id: True; False when it is (or was within `keep`
        seconds) here already, and nothing is written."""
        ...

    def backlog(self) -> int:
        """Messages in this process's spool."""
        ...


@dataclass(frozen=True)
class TransferLimits:
    max_size: int  # bytes of text
    max_recipients: int
    max_address: int  # octets of an address
    max_backlog: int  # messages queued here above which nothing more is taken
    keep: float  # seconds a taken id is remembered

    @classmethod
    def of(cls, config: Config) -> TransferLimits:
        smtp, delivery = config.smtp, config.delivery
        return cls(
            max_size=smtp.max_message_size + HEADROOM,
            max_recipients=smtp.max_recipients,
            max_address=smtp.max_local_part + 1 + smtp.max_domain,
            max_backlog=smtp.max_queue_backlog,
            keep=max(delivery.queue_lifetime, delivery.bounce_lifetime) + DAY,
        )


class TransferService:
    def __init__(
        self,
        intake: Intake,
        audit: AuditLog,
        clock: Clock,
        limits: TransferLimits,
        draining: Callable[[], str | None],
        metrics: Metrics | None = None,
    ) -> None:
        """`draining()` says where this node is drained to (None: it is not)."""
        self.intake = intake
        self.audit = audit
        self.clock = clock
        self.limits = limits
        self.draining = draining
        self.metrics = metrics or Metrics()

    async def take(self, item: MailItem, source: str, actor: str) -> Taken:
        """Make `item` durable here, once; "created" now or "already" here."""
        try:
            self._check_node()
            self._check(item)
            created = await self.intake.adopt(item, self.limits.keep)
        except (UsageError, ConflictError, SpoolFullError):
            self.metrics.imported.labels("refused").inc()
            raise
        if not created:
            self.metrics.imported.labels("already").inc()
            return "already"
        self.metrics.imported.labels("created").inc()
        details = {"from": source, "size": item.size, "rcpts": len(item.rcpts)}
        await self.audit.record(actor, "queue.import", item.id, details=details)
        return "created"

    def _check_node(self) -> None:
        to = self.draining()
        if to is not None:
            raise ConflictError(f"this node is being drained into {to} and takes no mail")
        if self.intake.backlog() >= self.limits.max_backlog:
            raise SpoolFullError(
                f"this node's queue holds {self.intake.backlog()} messages, over "
                f"[smtp] max_queue_backlog ({self.limits.max_backlog}); try later"
            )

    def _check(self, item: MailItem) -> None:
        limits, text = self.limits, item.text
        if text is None:
            raise UsageError("text: missing; the message's text is needed")
        if len(text) > limits.max_size:
            raise UsageError(
                f"text: {len(text)} bytes, over this node's {limits.max_size} "
                "([smtp] max_message_size and room for the relay's header fields)"
            )
        if item.size != len(text):
            raise UsageError(f"size: {item.size} is not the text's length, {len(text)}")
        if item.state not in STATES:
            raise UsageError(f"state: {item.state!r} is not one of {', '.join(STATES)}")
        if not 1 <= len(item.rcpts) <= limits.max_recipients:
            raise UsageError(
                f"rcpts: {len(item.rcpts)} recipients; from 1 to {limits.max_recipients} "
                "([smtp] max_recipients)"
            )
        if len(item.original_rcpts) > limits.max_recipients:
            raise UsageError(f"original_rcpts: over {limits.max_recipients} recipients")
        for field, addresses in (("rcpts", item.rcpts), ("original_rcpts", item.original_rcpts)):
            bad = next((a for a in addresses if not self._plausible(a)), None)
            if bad is not None:
                raise UsageError(f"{field}: {bad!r} is not a mail address")
        if item.sender and not self._plausible(item.sender):
            raise UsageError(f"sender: {item.sender!r} is not a mail address (or '')")

    def _plausible(self, address: str) -> bool:
        return (
            "@" in address
            and len(address.encode("utf-8", "replace")) <= self.limits.max_address
            and not _BAD.intersection(address)
        )
