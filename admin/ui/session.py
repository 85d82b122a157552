"""The web console's session cookie: who signed in with which token, until when.

A session is a random nonce (the seed of its CSRF token), the name and the
creation time of the API token it signed in with ("" before a sign-in: a
visitor of the sign-in page has a session too, so that form has its CSRF
token), and its end (`[admin] console_session` seconds of the node's clock
after it was made). It travels as a cookie `ugem_ui`: the payload in base64url
and its HMAC-SHA256 under a key the console draws at start (so a restart signs
everyone out), `HttpOnly`, `SameSite=Strict`, `Path=/ui/`, `Secure` when the
request came over TLS, `Max-Age` its lifetime. `read` gives the session of a
cookie, or None for a missing, forged, malformed or expired one (never raises).
The token behind a session is looked up again on every request
(`admin.ui.visitor`), so a revoked or replaced token ends its sessions at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass

from starlette.responses import Response

from ugem.core.clock import Clock

COOKIE = "ugem_ui"
PATH = "/ui/"


@dataclass(frozen=True)
class Session:
    nonce: str
    token: str  # the API token's name; "" before a sign-in
    token_created: float  # the token's created_at: a replaced token is another token
    expires: float  # on the node's clock


class Sessions:
    def __init__(self, key: bytes, lifetime: float, clock: Clock) -> None:
        self.key = key
        self.lifetime = lifetime
        self.clock = clock

    def new(self, token: str = "", token_created: float = 0.0) -> Session:
        nonce = secrets.token_urlsafe(24)
        return Session(nonce, token, token_created, self.clock.now() + self.lifetime)

    def write(self, session: Session) -> str:
        payload = base64.urlsafe_b64encode(json.dumps(asdict(session)).encode()).decode()
        return f"{payload}.{self._sign(payload)}"

    def read(self, cookie: str | None) -> Session | None:
        payload, _, signature = (cookie or "").partition(".")
        if not hmac.compare_digest(self._sign(payload).encode(), signature.encode()):
            return None
        try:
            session = Session(**json.loads(base64.urlsafe_b64decode(payload)))
        except (ValueError, TypeError, binascii.Error):
            return None
        return session if session.expires > self.clock.now() else None

    def attach(self, response: Response, session: Session, secure: bool) -> None:
        """Set the cookie of `session` on `response`."""
        response.set_cookie(
            COOKIE,
            self.write(session),
            max_age=max(1, int(session.expires - self.clock.now())),
            path=PATH,
            secure=secure,
            httponly=True,
            samesite="strict",
        )

    def _sign(self, payload: str) -> str:
        return hmac.new(self.key, b"session:" + payload.encode(), hashlib.sha256).hexdigest()
