"""The security headers of every web console answer, pages, assets and errors alike.

`SecurityHeaders` is pure ASGI middleware around the console's app: it sets
`HEADERS` on each response start (replacing any the app set), so no answer
under /ui/ leaves without them: a strict Content-Security-Policy (only the
console's own scripts, styles and images, inline SVG data URLs; no inline
script or style, no framing, forms posted only to the console), no MIME
sniffing, no Referer. Pages (not the assets under /ui/static/) are also
`Cache-Control: no-store`: they show the registry to whoever signed in.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
HEADERS: Final = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
STATIC: Final = "/static/"


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = dict(HEADERS)
        if STATIC not in str(scope["path"]):
            extra["cache-control"] = "no-store"
        wanted = {k.encode(): v.encode() for k, v in extra.items()}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in wanted]
                message["headers"] = kept + list(wanted.items())
            await send(message)

        await self.app(scope, receive, send_with_headers)
