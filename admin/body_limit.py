"""A cap on the size of every admin request's body, as pure ASGI middleware.

`BodyLimit(app, max_body_size)` answers `413` (an `admin.errors.problem`) naming
`[admin] max_body_size`:

- at once, without reading a byte of the body, when `Content-Length` is over
  the limit (or is not a number);
- when a body without a length (chunked) grows past the limit while the app
  reads it: the app's reading is cut off there (its `receive` raises), so at
  most the limit (and one read of the server's buffer) is ever held.

Every 413 says `Connection: close`, so the rest of the body is never read.
`wider` gives a route of its own limit by its exact path (the import of
another node's queued mail, `admin.queue_import`, takes a whole message).
What the app sends after a 413 is dropped. It wraps `receive` rather than
buffering, so bodies under the limit stream through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from admin.errors import problem


class _TooLarge(Exception):
    """Raised into the app when its body passes the limit (after the 413 is sent)."""


class BodyLimit:
    def __init__(
        self, app: ASGIApp, max_body_size: int, wider: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_body_size = max_body_size
        self.wider = dict(wider or {})

    def _refusal(self, limit: int) -> JSONResponse:
        most = (
            "the most this API takes ([admin] max_body_size)"
            if limit == self.max_body_size
            else "the most this route takes (the largest message this node takes)"
        )
        detail = f"the request body is over {limit} bytes, {most}"
        return problem(413, detail, headers={"Connection": "close"})

    @staticmethod
    def _fits(length: str, limit: int) -> bool:
        return length.isascii() and length.isdigit() and int(length) <= limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.wider.get(str(scope["path"]), self.max_body_size)
        length = Headers(scope=scope).get("content-length")
        if length is not None and not self._fits(length, limit):
            await self._refusal(limit)(scope, receive, send)
            return
        received, started, refused = 0, False, False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started:
                        refused = True
                        await self._refusal(limit)(scope, receive, send)
                    raise _TooLarge(f"request body over {limit} bytes")
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            if not refused:  # the answer had begun: all that is left is to drop the connection
                raise
