"""Messages that passed through the gateway: their history, from the message index.

The one logic behind `ugem log search` and `GET /v1/messages`: `MessageService
.search(query)` finds messages in the node's message index
(`ugem.core.message_index`, `[log] index_days`) by queue id, Message-ID (with
or without its angle brackets), sender, recipient (an address in any case, or
"@domain") and a time window, newest first, and gives each one's whole
history (accepted, every attempt per recipient, held, released, deleted,
expired; or the refusal at SMTP of mail that never got a queue id), long
after it left the queue, with a `status` read from it: delivered, bounced,
partly delivered (some recipients each), queued, held, expired, deleted or
refused. The answer is a `ugem.core.paging.Page`: `limit` messages (1 to
MAX_LIMIT), `total` counting them all, `next_cursor` (None on the last page)
for the next page.

`since` and `until` are RFC 3339 (2026-01-06T09:30:00+05:00, or with Z) or
Unix time (`ugem.core.times.parse`), or a date (2026-01-06); without a zone
they are Asia/Almaty time. A date as `until` means the end of that day, so
`since` and `until` the same date is that day. A message matches a window
when its life (first to last event) overlaps it. `as_dict` gives a history as
JSON data, times as RFC 3339 with the Almaty offset to the microsecond (events
of one message are often within a second), for the CLI's --json and the API.

`rate()` counts the traffic of the last RATE_MINUTES whole minutes of the
clock (the minute under way is left out): messages accepted (in) and
recipients delivered (out) per minute, oldest first, as a `Rate` (one query
over the index, `MessageIndex.per_minute`); the Overview page draws it and
GET /v1/messages/rate gives it.

Errors: bad input is a `UsageError` naming the field (since, until, limit,
cursor, ...); the index turned off is a `ConflictError` saying how to turn it
on; an index file that cannot be read (locked past its timeout, corrupt) is a
`StoreError`. An index not written yet (a node that never ran) finds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ugem.core import times
from ugem.core.clock import Clock, SystemClock
from ugem.core.config import Config
from ugem.core.errors import ConflictError, StoreError, UsageError
from ugem.core.message_index import (
    ENDS,
    Filter,
    Indexed,
    MessageIndex,
    final_outcomes,
    index_path,
)
from ugem.core.paging import Page, after, check_limit, page_from

DEFAULT_LIMIT = 50
MAX_TEXT = 998  # characters of an address or id searched for
TAG = "messages"  # the list's name in its cursors
RATE_MINUTES = 60  # the minutes `rate` counts


@dataclass(frozen=True)
class MessageQuery:
    """What to look for; None (or "") is anything."""

    queue_id: str | None = None
    message_id: str | None = None
    sender: str | None = None
    rcpt: str | None = None
    since: str | None = None
    until: str | None = None
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


@dataclass(frozen=True)
class MessageHistory:
    message: Indexed
    status: str


@dataclass(frozen=True)
class Rate:
    """Messages in (accepted) and out (recipients delivered) per minute, oldest first;
    minute i starts at `since` + 60 * i."""

    since: float
    accepted: tuple[int, ...]
    delivered: tuple[int, ...]

    @property
    def until(self) -> float:
        """The end of the last minute counted."""
        return self.since + 60 * len(self.accepted)


class MessageService:
    def __init__(self, index: Path | None, clock: Clock | None = None) -> None:
        """`index` is the message index file; None when `[log] index_days` is 0."""
        self.index = index
        self.clock = clock or SystemClock()

    @classmethod
    def of(cls, config: Config, clock: Clock | None = None) -> MessageService:
        """The service over the message index of `config`'s node."""
        return cls(index_path(config.data_path) if config.log.index_days > 0 else None, clock)

    async def search(self, query: MessageQuery) -> Page[MessageHistory]:
        found, limit = search_filter(query), check_limit(query.limit)
        start = _start(query.cursor)
        path = self._path()
        rows, total = await asyncio.to_thread(_read, path, found, limit, start)
        histories = [MessageHistory(m, status_of(m)) for m in rows]
        return page_from(histories, _key, limit, total, TAG)

    async def rate(self) -> Rate:
        """The last RATE_MINUTES whole minutes' messages in and out, per minute."""
        path = self._path()
        since = (self.clock.now() // 60 - RATE_MINUTES) * 60
        counts = await asyncio.to_thread(_per_minute, path, since)
        minutes = [counts.get(m, (0, 0)) for m in range(RATE_MINUTES)]
        return Rate(since, tuple(a for a, _ in minutes), tuple(d for _, d in minutes))

    def _path(self) -> Path:
        if self.index is None:
            raise ConflictError(
                "the message index is off ([log] index_days = 0); set index_days to keep "
                "the history of messages (from then on)"
            )
        return self.index


def _read(
    path: Path, found: Filter, limit: int, after: tuple[float, int] | None
) -> tuple[list[Indexed], int]:
    with _opened(path) as index:
        return ([], 0) if index is None else index.search(found, limit + 1, after)


def _per_minute(path: Path, since: float) -> dict[int, tuple[int, int]]:
    with _opened(path) as index:
        return {} if index is None else index.per_minute(since, RATE_MINUTES)


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[MessageIndex | None]:
    """The index at `path` opened to read (None: not written yet); StoreError on failure."""
    if not path.exists():
        yield None
        return
    try:
        index = MessageIndex(path, readonly=True)
        try:
            yield index
        finally:
            index.close()
    except sqlite3.Error as exc:
        raise StoreError(f"message index {path}: {exc}") from exc


def _key(history: MessageHistory) -> tuple[float, int]:
    """A message's place in the list: newest first, by its first event, then its key."""
    return history.message.first, history.message.key


def _start(cursor: str | None) -> tuple[float, int] | None:
    """The (first, key) a cursor points after; UsageError naming `cursor`."""
    key = after(cursor, TAG)
    match key:
        case None:
            return None
        case (int() | float() as first, int() as number):
            return float(first), number
    raise UsageError("cursor: not a cursor of the messages list; pass its own next_cursor")


def search_filter(query: MessageQuery) -> Filter:
    """The index's filter for `query`; UsageError naming a bad field."""
    since = parse_when(query.since, "since") if query.since else None
    until = parse_when(query.until, "until", end_of_day=True) if query.until else None
    if since is not None and until is not None and since >= until:
        raise UsageError(f"since: {query.since} is not before until ({query.until})")
    return Filter(
        queue_id=_text(query.queue_id, "queue_id"),
        message_id=_text(query.message_id, "message_id").strip("<>"),
        sender=_text(query.sender, "sender"),
        rcpt=_text(query.rcpt, "rcpt"),
        since=since,
        until=until,
    )


def _text(value: str | None, name: str) -> str:
    text = (value or "").strip()
    if len(text) > MAX_TEXT:
        raise UsageError(f"{name}: {len(text)} characters; at most {MAX_TEXT}")
    return text


def parse_when(text: str, name: str, end_of_day: bool = False) -> float:
    """Unix time of a time (`ugem.core.times.parse`) or a date (`end_of_day`: the day's
    end); without a zone, Asia/Almaty time. UsageError naming `name` otherwise."""
    value = text.strip()[:100]
    try:
        if len(value) == len("2026-01-06") and value[4:5] == "-":
            start = dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), times.ALMATY)
            return (start + dt.timedelta(days=1) if end_of_day else start).timestamp()
        return times.parse(value)
    except (ValueError, OverflowError):
        raise UsageError(
            f"{name}: {value[:60]!r} is not a time; expected {times.READ}, or a date "
            "(2026-01-06: from its start, or as the end of a window to its end)"
        ) from None


def rfc3339(ts: float) -> str:
    """`ts` as RFC 3339 with Asia/Almaty's offset, to the microsecond."""
    return times.rfc3339(ts, precise=True)


def status_of(message: Indexed) -> str:
    """What became of the message, read from its history."""
    events = message.events
    names = [e.event for e in events]
    if "refused" in names:
        return "refused"
    for ev in reversed(events):
        if ev.event in ENDS and ev.fields.get("queue_id"):
            return ev.event
    final = final_outcomes(events)
    if any(final.get(rcpt.lower()) not in ("delivered", "bounced") for rcpt in message.rcpts):
        holds = [e.event for e in events if e.event in ("held", "released")]
        return "held" if holds and holds[-1] == "held" else "queued"
    kinds = {final[rcpt.lower()] for rcpt in message.rcpts}
    if len(kinds) == 1:
        return kinds.pop()
    return "partly delivered" if kinds else "queued"


def as_dict(history: MessageHistory) -> dict[str, Any]:
    """A message's history as JSON data (times RFC 3339, Asia/Almaty)."""
    m = history.message
    return {
        "queue_id": m.queue_id or None,
        "message_id": m.message_id,
        "sender": m.sender,
        "rcpts": list(m.rcpts),
        "connection": m.connection,
        "client_ip": m.client_ip,
        "status": history.status,
        "first": rfc3339(m.first),
        "last": rfc3339(m.last),
        "events": [{"time": rfc3339(e.ts), "event": e.event, **e.fields} for e in m.events],
    }
