"""`/v1/messages`: the history of messages that passed through, from the message index.

Needs `viewer`. `GET /v1/messages` is `MessageService.search` (the same as
`ugem log search`): filters `queue_id`, `message_id`, `from`, `to` (an address
in any case, or "@domain"), `since` and `until` (RFC 3339, Unix time, or a
date; Asia/Almaty without a zone), newest first, a page at a time
(`admin.pages`). Each message carries its status and its events in time
order, each event with the fields of its mail log line (`ugem.core.maillog`).
`GET /v1/messages/rate` is `MessageService.rate`: messages accepted (in) and
recipients delivered (out) in each of the last 60 whole minutes, oldest first.
Bad filters are 422 naming them; the index turned off (`[log] index_days` 0)
is 409; an index that cannot be read is 503.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from admin.auth import Authority
from admin.pages import DEFAULT_LIMIT, Cursor, Limit, PageOut, page_out
from ugem.core.services.messages import (
    MessageHistory,
    MessageQuery,
    MessageService,
    Rate,
    as_dict,
    rfc3339,
)
from ugem.core.services.tokens import Role

WHEN = (
    "RFC 3339 (2026-01-06T09:30:00+05:00), Unix time or a date (2026-01-06; as `until`, "
    "to that day's end); without a zone, Asia/Almaty"
)
Text = Annotated[str | None, Query(max_length=998)]


class MessageEventOut(BaseModel):
    """One event of a message: its time and name, and its mail log line's fields."""

    model_config = ConfigDict(extra="allow")
    time: str = Field(description="RFC 3339 in Asia/Almaty, to the microsecond")
    event: str = Field(description="accepted, delivered, deferred, bounced, held, ...")


class MessageOut(BaseModel):
    queue_id: str | None = Field(description="null for mail refused at SMTP")
    message_id: str
    sender: str
    rcpts: list[str]
    connection: str = Field(description="the client's connection; empty: from the internet")
    client_ip: str
    status: str = Field(
        description="delivered, bounced, partly delivered, queued, held, expired, deleted, refused"
    )
    first: str = Field(description="its first event (RFC 3339, Asia/Almaty)")
    last: str = Field(description="its last event (RFC 3339, Asia/Almaty)")
    events: list[MessageEventOut]

    @classmethod
    def of(cls, history: MessageHistory) -> MessageOut:
        data: dict[str, Any] = as_dict(history)
        return cls.model_validate(data)


class RateOut(BaseModel):
    """Mail in and out per minute, oldest first: minute i starts `since` + i minutes."""

    since: str = Field(description="the first minute's start (RFC 3339, Asia/Almaty)")
    accepted: list[int] = Field(description="messages accepted (in), per minute")
    delivered: list[int] = Field(description="recipients delivered (out), per minute")

    @classmethod
    def of(cls, rate: Rate) -> RateOut:
        return cls(
            since=rfc3339(rate.since), accepted=[*rate.accepted], delivered=[*rate.delivered]
        )


def router(service: MessageService, auth: Authority) -> APIRouter:
    r = APIRouter(
        prefix="/messages", tags=["messages"], dependencies=[Depends(auth.require(Role.VIEWER))]
    )

    @r.get("", response_model=PageOut[MessageOut], summary="Search the history of messages")
    async def search_messages(
        queue_id: Text = None,
        message_id: Text = None,
        sender: Annotated[str | None, Query(alias="from", max_length=998)] = None,
        rcpt: Annotated[str | None, Query(alias="to", max_length=998)] = None,
        since: Annotated[str | None, Query(max_length=100, description=WHEN)] = None,
        until: Annotated[str | None, Query(max_length=100, description=WHEN)] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> PageOut[MessageOut]:
        """Each message found with its whole history (accepted, every attempt per
        recipient, the end), newest first, also long after it left the queue."""
        query = MessageQuery(queue_id, message_id, sender, rcpt, since, until, limit, cursor)
        return page_out(await service.search(query), MessageOut.of)

    @r.get("/rate", response_model=RateOut, summary="Messages in and out per minute")
    async def message_rate() -> RateOut:
        """Messages accepted and recipients delivered in each of the last 60 whole
        minutes, from the message index."""
        return RateOut.of(await service.rate())

    return r
