"""CSRF tokens of the web console: one per session, in every form, checked on every POST.

`token_for(key, nonce)` is an HMAC-SHA256 of the session's random nonce under
the console's key, so it needs no storage, changes with every session (a
sign-in makes a new nonce) and cannot be made without the key. `valid(key,
nonce, given)` compares in constant time (`hmac.compare_digest`) and is false
for a missing, short or foreign token; it never raises.
"""

from __future__ import annotations

import hashlib
import hmac

FIELD = "csrf"  # the form field that carries it


def token_for(key: bytes, nonce: str) -> str:
    return hmac.new(key, b"csrf:" + nonce.encode(), hashlib.sha256).hexdigest()


def valid(key: bytes, nonce: str, given: str | None) -> bool:
    return hmac.compare_digest(token_for(key, nonce).encode(), (given or "").encode())
