"""The admin listener's HTTP/1.1 connections: uvicorn's h11 protocol with deadlines and a cap.

uvicorn (0.55) has no deadline for a request's head: a client that connects
and sends nothing, or a header a byte at a time, holds its connection (and
a file descriptor the SMTP listener shares) for ever, and its
`limit_concurrency` answers 503 only once a whole head has arrived, so idle
connections over it are never refused. `guarded_protocol(settings)` gives
the protocol class `AdminServer` runs uvicorn with; on each connection it
promises:

- over `[admin] max_connections` open admin connections, a new one gets a
  fixed `503` (a problem+json body, `admin.errors`) and is closed at once,
  before any of its bytes is read (the SMTP listener's `[smtp]
  max_connections` is a separate count);
- a request's head must be complete within `header_timeout` seconds of the
  connection opening or of the previous answer (so an idle kept-alive
  connection is closed then too), its body within `body_timeout` seconds
  of the head; a late client gets `408` if a request was begun and nothing
  answered yet, and the connection is closed.

Closing a connection is all it does; the application sees a late body as a
disconnected client.
"""

from __future__ import annotations

import asyncio
import json
from enum import Enum
from http import HTTPStatus
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from admin.errors import MEDIA_TYPE, problem_body
from ugem.core.config import AdminConfig


def _answer(status: HTTPStatus, detail: str) -> bytes:
    """A whole HTTP/1.1 problem answer that closes the connection, written without h11."""
    text = json.dumps(problem_body(status, detail), separators=(",", ":"))
    head = f"HTTP/1.1 {status} {status.phrase}\r\nContent-Type: {MEDIA_TYPE}\r\n"
    return f"{head}Content-Length: {len(text)}\r\nConnection: close\r\n\r\n{text}".encode()


BUSY = _answer(HTTPStatus.SERVICE_UNAVAILABLE, "too many admin connections; try again")
LATE = _answer(HTTPStatus.REQUEST_TIMEOUT, "the request came too slowly")


class _Wait(Enum):
    HEAD = "head"
    BODY = "body"


class GuardedH11Protocol(H11Protocol):
    """`H11Protocol` with the connection cap and the head and body deadlines."""

    max_connections = AdminConfig.max_connections
    header_timeout = AdminConfig.header_timeout
    body_timeout = AdminConfig.body_timeout

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._timer: asyncio.TimerHandle | None = None
        self._waiting: _Wait | None = None
        self._cycle_at_start: object = None  # the cycle when the wait for a head began

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self.transport.write(BUSY)
            self.transport.close()
            return
        self._wait_for_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._progress()

    def on_response_complete(self) -> None:
        answered = self.cycle
        super().on_response_complete()  # may start a pipelined request
        if self.transport.is_closing():
            return
        if self.cycle is answered:
            self._wait_for_head()
        else:
            self._progress()

    def _progress(self) -> None:
        """Stop a wait that is over: a new head came, or the body is complete."""
        if self._waiting is _Wait.HEAD and self.cycle is not self._cycle_at_start:
            self._stop_waiting()
            if self.cycle.more_body:
                self._start(_Wait.BODY, self.body_timeout)
        elif self._waiting is _Wait.BODY and not self.cycle.more_body:
            self._stop_waiting()

    def _wait_for_head(self) -> None:
        self._cycle_at_start = self.cycle
        self._start(_Wait.HEAD, self.header_timeout)

    def _start(self, waiting: _Wait, seconds: float) -> None:
        self._stop_waiting()
        self._waiting = waiting
        self._timer = self.loop.call_later(seconds, self._late)

    def _stop_waiting(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._waiting = None, None

    def _late(self) -> None:
        waiting, self._timer, self._waiting = self._waiting, None, None
        if self.transport.is_closing() or waiting is None:
            return
        begun = waiting is _Wait.BODY or bool(self.conn.trailing_data[0])
        unanswered = waiting is _Wait.HEAD or not self.cycle.response_started
        if begun and unanswered and self.conn.our_state is not h11.ERROR:
            self.transport.write(LATE)
        self.transport.close()


def guarded_protocol(settings: AdminConfig) -> type[GuardedH11Protocol]:
    """The protocol class for uvicorn, with the cap and the deadlines of `settings`."""
    return type(
        "AdminH11Protocol",
        (GuardedH11Protocol,),
        {
            "max_connections": settings.max_connections,
            "header_timeout": settings.header_timeout,
            "body_timeout": settings.body_timeout,
        },
    )
