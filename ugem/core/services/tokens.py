"""API tokens and their roles: create (the secret shown once), list, revoke, authenticate.

A token is `ugem_` and 43 characters of URL-safe randomness (256 bits); the
store keeps only its sha256, so a copy of the store gives no usable token.
`authenticate` hashes what the client sent and compares it with every live
token's hash by `hmac.compare_digest` (constant time); it returns the token or
None and never raises for a wrong secret. Roles are ordered: `viewer` reads,
`operator` also acts on applications, connections and mail, `admin` also
manages tokens and disconnects. A bad name or role is a `UsageError`; a name
in use (revoked ones stay for the record) a `ConflictError`, unless the
creation replaces it (`replace=True`: the old secret stops working at once, so
a script may run the same creation again and get a working token); revoking
an unknown name a `NotFoundError`. Creating, replacing and revoking are
audited (`token.create`, `token.replace` with the old record, `token.revoke`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

from ugem.core.clock import Clock
from ugem.core.errors import ConflictError, NotFoundError, StoreError, UsageError
from ugem.core.paging import DEFAULT_LIMIT, Page, page_of
from ugem.core.services.audit import AuditLog
from ugem.core.store.base import Store

KIND = "token"
PREFIX = "ugem_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True)
class ApiToken:
    name: str
    role: Role
    digest: str  # sha256 hex of the secret
    created_at: float
    created_by: str
    revoked_at: float = 0.0

    @property
    def active(self) -> bool:
        return not self.revoked_at

    @property
    def actor(self) -> str:
        """How the audit log names what this token does."""
        return f"api:{self.name}"

    def public(self) -> dict[str, Any]:
        """Everything but the hash."""
        data = asdict(self)
        del data["digest"]
        data["role"] = self.role.value
        return data


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def role_of(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise UsageError(f"role: {value!r} is not one of {allowed}") from None


class TokenService:
    def __init__(self, store: Store, audit: AuditLog, clock: Clock) -> None:
        self.store = store
        self.audit = audit
        self.clock = clock

    async def create(
        self, name: str, role: Role | str, actor: str, replace: bool = False
    ) -> tuple[ApiToken, str]:
        """A new token and its secret; the secret is not kept and cannot be shown again.
        With `replace`, a token of that name, live or revoked, is overwritten."""
        if not _NAME.match(name):
            raise UsageError(
                f"name: {name!r} is not valid; expected 1 to 64 letters, digits, '.', '_', "
                "'@' or '-', starting with a letter or digit"
            )
        secret = PREFIX + secrets.token_urlsafe(32)
        token = ApiToken(name, role_of(str(role)), digest(secret), self.clock.now(), actor)
        old = await self.store.doc_get(KIND, name) if replace else None
        if old is None:
            await self.store.doc_add(KIND, name, _encode(token))
            await self.audit.record(actor, "token.create", name, after=token.public())
            return token, secret
        await self.store.doc_put(KIND, name, _encode(token))
        before = _decode(old, name).public()
        await self.audit.record(actor, "token.replace", name, before=before, after=token.public())
        return token, secret

    async def list(self) -> list[ApiToken]:
        return [_decode(data, name) for name, data in await self.store.doc_list(KIND)]

    async def page(self, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> Page[ApiToken]:
        """A page of `list`, by name (keyset: `ugem.core.paging`), and the total."""
        found = sorted(await self.list(), key=lambda t: t.name)
        return page_of(found, lambda t: t.name, limit, cursor, "tokens")

    async def get(self, name: str) -> ApiToken:
        data = await self.store.doc_get(KIND, name)
        if data is None:
            raise NotFoundError(f"no token {name!r}; `ugem token list` shows them")
        return _decode(data, name)

    async def revoke(self, name: str, actor: str, reason: str = "") -> ApiToken:
        token = await self.get(name)
        if not token.active:
            raise ConflictError(f"token {name!r} is revoked already; nothing to do")
        revoked = replace(token, revoked_at=self.clock.now())
        await self.store.doc_put(KIND, name, _encode(revoked))
        await self.audit.record(
            actor, "token.revoke", name, reason, before=token.public(), after=revoked.public()
        )
        return revoked

    async def authenticate(self, secret: str) -> ApiToken | None:
        """The live token whose secret this is, or None."""
        wanted, found = digest(secret), None
        for token in await self.list():
            if hmac.compare_digest(token.digest, wanted) and token.active:
                found = token
        return found


def _encode(token: ApiToken) -> str:
    return json.dumps(asdict(token) | {"role": token.role.value}, sort_keys=True)


def _decode(data: str, name: str) -> ApiToken:
    try:
        fields = json.loads(data)
        return ApiToken(**fields | {"role": Role(fields["role"])})
    except (ValueError, TypeError, KeyError) as exc:
        raise StoreError(f"token {name!r}: the stored token is damaged: {exc}") from exc
