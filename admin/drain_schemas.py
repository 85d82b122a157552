"""The JSON bodies of a drain: `/v1/drain` and `/v1/queue/import`, in and out.

Kept apart from `admin.schemas` (the rest of the API's) as one job: what a
node being drained and the node taking its mail say to each other and to
operators. Input models forbid unknown fields and non-finite numbers
(`admin.schemas.In`); the services check the meaning (`UsageError`, 422
naming the field). `ImportIn` is `ugem.core.transfer_client.wire_form` read
back: a `MailItem`'s fields, the text in base64, and the sending node's name; its
times stay Unix time, exact floats between two nodes (a message's expiry counts
from `received_at`), while the drain's status shows RFC 3339 (`admin.times.Time`).
The receiving node's token a drain is given is never in any answer.
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from pydantic import BaseModel, Field

from admin.schemas import TEXT, In
from admin.times import Time
from ugem.core.drain_state import WorkerAnswer
from ugem.core.errors import UsageError
from ugem.core.services.drain import DrainReport, DrainStatus
from ugem.core.services.mailqueue import MailItem

ADDRESS = 1024  # longest address taken, in characters (the service checks [smtp]'s limits)
State = Literal["active", "deferred", "held"]


class ImportIn(In):
    id: str = Field(pattern=r"^[0-9A-Za-z]{1,64}$", description="the queue id on the sender")
    source: str = Field("", max_length=255, description="the sending node's name")
    state: State
    sender: str = Field(max_length=ADDRESS, description='"" is the null sender')
    rcpts: list[str] = Field(description="recipients not yet delivered or bounced")
    original_rcpts: list[str]
    size: int = Field(ge=0, description="bytes of text")
    connection: str = Field(max_length=255, description='origin connection; "" inbound')
    client_ip: str = Field(max_length=64)
    received_at: float = Field(ge=0, description="first queued (Unix time): expiry counts from it")
    attempts: int = Field(ge=0, le=1_000_000)
    next_attempt: float = Field(ge=0, description="Unix time; 0: due now")
    last_error: str = Field(max_length=4 * TEXT)
    hold_reason: str = Field(max_length=TEXT)
    text: str = Field(description="the message text as it will go out, in base64")

    def item(self) -> MailItem:
        try:
            text = base64.b64decode(self.text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise UsageError(f"text: not base64 ({exc})") from exc
        fields = self.model_dump(exclude={"text", "source"})
        fields["rcpts"], fields["original_rcpts"] = tuple(self.rcpts), tuple(self.original_rcpts)
        return MailItem(**fields, text=text)


class ImportOut(BaseModel):
    id: str
    result: Literal["created", "already"] = Field(
        description="created: durable here now (201); already: here, or taken before (200)"
    )


class DrainIn(In):
    to: str = Field(
        min_length=3,
        max_length=300,
        description="the receiving node's admin listener: host:port or an http(s) URL",
    )
    token: str = Field(min_length=1, max_length=500, description="an admin token of that node")
    reason: str = Field("", max_length=TEXT, description="why (kept in the audit log)")


class WorkerOut(BaseModel):
    worker: int
    paused: bool = Field(description="it answered this drain request")
    quiet: bool = Field(description="no delivery in flight, no SMTP session open")
    in_flight: int
    sessions: int
    pid: int

    @classmethod
    def of(cls, worker: int, answer: WorkerAnswer | None, request: str) -> WorkerOut:
        if answer is None or answer.request != request:
            return cls(worker=worker, paused=False, quiet=False, in_flight=0, sessions=0, pid=0)
        return cls(
            worker=worker,
            paused=True,
            quiet=answer.quiet,
            in_flight=answer.in_flight,
            sessions=answer.sessions,
            pid=answer.pid,
        )


class ReportOut(BaseModel):
    request: str
    to: str
    state: Literal["pausing", "moving", "done", "stopped"] = Field(
        description="done: the node's queue is empty"
    )
    moved: int
    already: int = Field(description="the receiver had them (a retry after a cut); not twice")
    failed: int = Field(description="refused by the receiver; they stay here")
    left: int
    reason: str
    failures: dict[str, str] = Field(description="queue id -> why (the first ones)")
    started_at: Time
    updated_at: Time
    pid: int

    @classmethod
    def of(cls, report: DrainReport) -> ReportOut:
        return cls.model_validate(report.as_dict())


class DrainOut(BaseModel):
    draining: bool = Field(
        description="the node takes no mail (and, with a `to`, delivers none: it hands it over)"
    )
    to: str = Field(description='the node drained into; "": stop accepting, keep delivering')
    since: Time | None = Field(description="when the drain was asked for; null: not draining")
    by: str
    request: str
    running: bool = Field(description="a drain is moving the queue now")
    workers: list[WorkerOut]
    report: ReportOut | None = Field(description="the last drain run's")
    left: int | None = Field(None, description="messages still queued (stop-accepting's answer)")

    @classmethod
    def of(cls, status: DrainStatus, left: int | None = None) -> DrainOut:
        request = status.request
        request_id = "" if request is None else request.id
        return cls(
            draining=request is not None,
            to="" if request is None else request.to,
            since=None if request is None else request.since,
            by="" if request is None else request.by,
            request=request_id,
            running=status.running,
            workers=[WorkerOut.of(w, a, request_id) for w, a in status.workers.items()],
            report=None if status.report is None else ReportOut.of(status.report),
            left=left,
        )
