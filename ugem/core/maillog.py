"""The mail log: what one line says about one event of one message.

`entry_of(event)` turns a relay event (`ugem.core.events`) into an `Entry`: the
line's name and fields, and the envelope the message index
(`ugem.core.message_index`) files it under. `emit(entry)` writes it at INFO on
the logger `ugem.maillog` (its own, so an operator can route or silence it;
the node's JSON or text format, `ugem.core.log`). The lines and their fields:

- accepted: queue_id, client_ip, connection, sender, rcpts (how many), size,
  message_id, tls, helo;
- delivered, deferred, bounced (one line per recipient per attempt): queue_id,
  rcpt, sender, connection, hop, code, status, text, reply_class, attempt, and
  the delays in seconds: delay (since accepted), connect (opening the session,
  0 for a reused one), transfer (the transaction);
- refused (a 4xx/5xx to MAIL, RCPT or DATA): client_ip, connection, command,
  code, status, text, why, sender, rcpt (RCPT) or rcpts (DATA: how many), helo,
  tls;
- held, released, deleted, expired, returned (to the sender by an operator, with a
  DSN): queue_id (absent when `count` messages of
  a connection changed at once), connection, actor ("relay" or the operator),
  reason, count.

An empty connection means the client is no connected server (mail from the
internet). Events that are not about mail (suspensions, complaints) have no
entry. Pure but for `emit`, which never raises (`ugem.core.log`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ugem.core.events import Accepted, Event, Outcome, QueueChange, Refused
from ugem.core.log import event

LOGGER = "ugem.maillog"
log = logging.getLogger(LOGGER)


@dataclass(frozen=True, slots=True)
class Entry:
    """One mail log line (`event`, `fields`) and what the index files it under."""

    ts: float
    event: str
    queue_id: str  # "" for a refusal, or a change of a connection's mail at once
    connection: str
    client_ip: str
    sender: str
    rcpts: tuple[str, ...]
    message_id: str
    fields: dict[str, Any]


def entry_of(ev: Event) -> Entry | None:
    """The mail log's entry for `ev`; None for an event that is not about mail."""
    if isinstance(ev, Accepted):
        return _accepted(ev)
    if isinstance(ev, Outcome):
        return _outcome(ev)
    if isinstance(ev, Refused):
        return _refused(ev)
    if isinstance(ev, QueueChange):
        return _changed(ev)
    return None


def emit(entry: Entry) -> None:
    """The entry's line, at INFO on `ugem.maillog`."""
    event(log, entry.event, logging.INFO, **entry.fields)


def _accepted(ev: Accepted) -> Entry:
    fields = {
        "queue_id": ev.queue_id,
        "client_ip": ev.ip,
        "connection": ev.connection,
        "sender": ev.sender,
        "rcpts": len(ev.rcpts),
        "size": ev.size,
        "message_id": ev.message_id,
        "tls": ev.tls,
        "helo": ev.helo,
    }
    envelope = (ev.connection, ev.ip, ev.sender, ev.rcpts, ev.message_id)
    return Entry(ev.ts, "accepted", ev.queue_id, *envelope, fields)


def _outcome(ev: Outcome) -> Entry:
    fields = {
        "queue_id": ev.queue_id,
        "rcpt": ev.rcpt,
        "sender": ev.sender,
        "connection": ev.connection,
        "hop": ev.hop,
        "code": ev.code,
        "status": ev.status,
        "text": ev.reason,
        "reply_class": ev.reply_class,
        "attempt": ev.attempt,
        "delay": round(ev.delay, 3),
        "connect": round(ev.connect, 3),
        "transfer": round(ev.transfer, 3),
    }
    return Entry(
        ev.ts, ev.event, ev.queue_id, ev.connection, ev.ip, ev.sender, (ev.rcpt,), "", fields
    )


def _refused(ev: Refused) -> Entry:
    fields: dict[str, Any] = {
        "client_ip": ev.ip,
        "connection": ev.connection,
        "command": ev.command,
        "code": ev.code,
        "status": ev.status,
        "text": ev.text,
        "why": ev.why,
        "sender": ev.sender,
    }
    if ev.command == "RCPT":
        fields["rcpt"] = ev.rcpts[0] if ev.rcpts else ""
    elif ev.command == "DATA":
        fields["rcpts"] = len(ev.rcpts)
    fields["helo"] = ev.helo
    fields["tls"] = ev.tls
    return Entry(ev.ts, "refused", "", ev.connection, ev.ip, ev.sender, ev.rcpts, "", fields)


def _changed(ev: QueueChange) -> Entry:
    fields: dict[str, Any] = {"queue_id": ev.queue_id} if ev.queue_id else {}
    fields |= {
        "connection": ev.connection,
        "actor": ev.actor,
        "reason": ev.reason,
        "count": ev.count,
    }
    return Entry(ev.ts, ev.event, ev.queue_id, ev.connection, "", "", (), "", fields)
