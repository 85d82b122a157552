"""Typed relay events and the in-process bus that carries them to observers.

Events flow one way: the relay publishes, observers (the anomaly detector,
the trace writer, metrics) subscribe. `EventBus.publish` never blocks and never
raises: each subscriber has a bounded queue, and an event that does not fit is
dropped for that subscriber and counted (`Subscription.dropped`), so a slow
observer can never slow the SMTP path. Delivery outcomes are per recipient and
carry the connection and client address of the message's origin, as the trace
format asks, and what the reply says (its class and the block list it names);
the class and the list stay out of trace records, whose format is fixed.

The mail log (`ugem.core.maillog`) reads more of each event: the Message-ID,
TLS and HELO name of an accepted message; the next hop, enhanced status,
sender, attempt number and delays of an outcome; the SMTP refusals
(`Refused`) and the queue's changes of a message (`QueueChange`: held,
released, deleted, expired). Those fields have defaults, so a publisher that
does not know them still builds the event, and none of them reaches a trace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

EventName = Literal[
    "accepted",
    "delivered",
    "deferred",
    "bounced",
    "suspended",
    "resumed",
    "complained",
    "refused",
    "held",
    "released",
    "deleted",
    "expired",
]
QueueEvent = Literal["held", "released", "deleted", "expired", "returned"]


@dataclass(frozen=True, slots=True)
class Accepted:
    ts: float
    queue_id: str
    connection: str  # "" when the client is not a connected server (inbound)
    ip: str
    sender: str
    rcpts: tuple[str, ...]
    size: int
    event: EventName = "accepted"
    message_id: str = ""  # of the header, without its angle brackets; "": none
    tls: bool = False  # whether the client sent it over TLS
    helo: str = ""  # the name the client gave in HELO/EHLO


@dataclass(frozen=True, slots=True)
class Outcome:
    """One delivery attempt's result for one recipient: delivered, deferred or bounced."""

    ts: float
    event: EventName
    queue_id: str
    connection: str
    ip: str
    rcpt: str
    code: int
    reason: str = ""
    counted: int = 0  # the code the detector counts it as (ugem.core.reply_class); 0: `code`
    reply_class: str = ""  # what the reply says (a ugem.core.reply_class class); "": unknown
    blocklist: str = ""  # the block list the reply names ("Spamhaus"), else ""
    status: str = ""  # the enhanced status code (RFC 3463), "4.4.1"
    hop: str = ""  # the next hop that answered, "host:port"; "": none was reached
    sender: str = ""  # the message's envelope sender ("" also for the null sender)
    attempt: int = 0  # the message's attempt this is, from 1; 0: unknown
    delay: float = 0.0  # seconds from acceptance to this outcome (time in the queue)
    connect: float = 0.0  # seconds opening the session (DNS, TCP, greeting, TLS); 0: reused
    transfer: float = 0.0  # seconds of the transaction (MAIL to the reply to the text)


@dataclass(frozen=True, slots=True)
class Refused:
    """An SMTP command of a mail transaction (MAIL, RCPT, DATA) refused with a 4xx/5xx."""

    ts: float
    ip: str
    connection: str  # of the client's address; "" when it is no connected server
    command: str  # MAIL, RCPT or DATA
    code: int
    status: str
    text: str
    why: str  # what the refusal means, for a postmaster
    sender: str = ""
    rcpts: tuple[str, ...] = ()  # the recipient refused (RCPT), or the transaction's (DATA)
    helo: str = ""
    tls: bool = False
    event: EventName = "refused"


@dataclass(frozen=True, slots=True)
class QueueChange:
    """Queued mail held, released, deleted, expired or returned to its sender by an
    operator (a DSN queued, the message deleted): one message (`queue_id`) or, with
    queue_id "", `count` messages of `connection` at once."""

    ts: float
    event: QueueEvent
    queue_id: str
    connection: str
    actor: str  # "relay" for the queue's own decisions, else who ("cli:alice", "token:ops")
    reason: str = ""
    count: int = 1


@dataclass(frozen=True, slots=True)
class StateChanged:
    """A connection was suspended or resumed (by an operator or the detector)."""

    ts: float
    event: EventName
    connection: str
    actor: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Complained:
    """A feedback-loop complaint arrived (ugem.core.services.complaints): evidence about
    `connection` ("" when it could not be traced) at `ts`; no trace record, no verdict yet."""

    ts: float
    connection: str
    complaint: int  # its number in the store
    feedback_type: str  # abuse, fraud, virus, other, not-spam, auth-failure, ...
    attributed_by: str  # queue_id, dkim, sender_domain, none
    event: EventName = "complained"


Event = Accepted | Outcome | StateChanged | Complained | Refused | QueueChange
Publish = Callable[[Event], None]  # EventBus.publish, or another sink of events


@dataclass
class Subscription:
    name: str
    queue: asyncio.Queue[Event]
    dropped: int = 0

    async def get(self) -> Event:
        return await self.queue.get()


@dataclass
class EventBus:
    subscriptions: list[Subscription] = field(default_factory=list)

    def subscribe(self, name: str, maxsize: int = 100_000) -> Subscription:
        sub = Subscription(name, asyncio.Queue(maxsize))
        self.subscriptions.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self.subscriptions:
            self.subscriptions.remove(sub)

    def publish(self, event: Event) -> None:
        for sub in self.subscriptions:
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.dropped += 1


def trace_record(event: Event) -> dict[str, Any] | None:
    """The event as a line of ../shared/anomaly/TRACE-FORMAT.md, or None if it has none.

    Only traffic of connected servers belongs in a trace: inbound mail from the
    internet (no connection) is not written.
    """
    if isinstance(event, Accepted):
        if not event.connection:
            return None
        return {
            "ts": event.ts,
            "connection": event.connection,
            "ip": event.ip,
            "event": "accepted",
            "sender": event.sender,
            "rcpts": list(event.rcpts),
            "size": event.size,
        }
    if isinstance(event, Outcome):
        if not event.connection:
            return None
        record: dict[str, Any] = {
            "ts": event.ts,
            "connection": event.connection,
            "ip": event.ip,
            "event": event.event,
            "rcpt": event.rcpt,
            "code": event.code,
        }
        if event.counted and event.counted != event.code:
            record["counted"] = event.counted  # what its text says (an unknown field to others)
        return record
    return None


def event_of_record(record: Mapping[str, Any]) -> Accepted | Outcome:
    """The event a trace record stands for (the inverse of `trace_record`).

    The queue id is not in a trace, so it is "". Raises KeyError, TypeError or
    ValueError on a record that is not one `trace_record` makes.
    """
    kind = record["event"]
    if kind == "accepted":
        rcpts = tuple(str(r) for r in record["rcpts"])
        return Accepted(
            float(record["ts"]),
            "",
            str(record["connection"]),
            str(record["ip"]),
            str(record["sender"]),
            rcpts,
            int(record["size"]),
        )
    if kind in _OUTCOMES:
        return Outcome(
            float(record["ts"]),
            _OUTCOMES[kind],
            "",
            str(record["connection"]),
            str(record["ip"]),
            str(record["rcpt"]),
            int(record["code"]),
            counted=int(record.get("counted", 0)),
        )
    raise ValueError(f"not a traffic event: {kind!r}")


_OUTCOMES: dict[str, EventName] = {
    "delivered": "delivered",
    "deferred": "deferred",
    "bounced": "bounced",
}
