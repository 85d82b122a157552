"""Who is asking: the session of a request, its live API token, its language, its CSRF token.

`Doorman.visitor(request)` reads the session cookie (`admin.ui.session`; a
new anonymous session when there is none or it is not valid, which the page's
answer then sets), looks up the token it names (`TokenService.get`: the token
must still be live and the same one, not revoked or replaced since the
sign-in) and picks the language (`admin.ui.i18n.choose`). `Visitor.token` is
None for a visitor who has not signed in. `Doorman.admit(visitor, role,
given_csrf)` is the check of every POST: a CSRF token that is not this
session's, no sign-in or a role below `role` raises `ForbiddenError` (403),
whatever the page showed. A store that cannot be read raises `StoreError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from admin.ui import csrf
from admin.ui.i18n import Catalogues, Words, choose
from admin.ui.session import COOKIE, Session, Sessions
from ugem.core.errors import ForbiddenError, NotFoundError
from ugem.core.services.tokens import ApiToken, Role, TokenService

LANG_COOKIE = "ugem_lang"


@dataclass(frozen=True)
class Visitor:
    session: Session
    fresh: bool  # the session is new: the answer must set its cookie
    token: ApiToken | None
    words: Words
    csrf: str
    secure: bool  # came over TLS
    here: str  # the page asked (path and query; the console's home for a POST)

    def may(self, role: Role) -> bool:
        return self.token is not None and self.token.role.allows(role)


class Doorman:
    def __init__(self, sessions: Sessions, tokens: TokenService, catalogues: Catalogues) -> None:
        self.sessions = sessions
        self.tokens = tokens
        self.catalogues = catalogues

    async def visitor(self, request: Request, look_up: bool = True) -> Visitor:
        """The visitor of `request`; without `look_up`, its token is not read (None)."""
        found = self.sessions.read(request.cookies.get(COOKIE))
        session = found or self.sessions.new()
        lang = choose(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
        return Visitor(
            session,
            found is None,
            await self._token(session) if look_up else None,
            self.catalogues.words(lang),
            csrf.token_for(self.sessions.key, session.nonce),
            request.url.scheme == "https",
            _here(request),
        )

    def admit(self, visitor: Visitor, role: Role | None, given_csrf: str | None) -> None:
        """Refuse (ForbiddenError) a POST without this session's CSRF token, or below `role`
        (None: no sign-in needed)."""
        words = visitor.words
        if visitor.fresh or not csrf.valid(self.sessions.key, visitor.session.nonce, given_csrf):
            raise ForbiddenError(words("refused.csrf"))
        if role is not None and visitor.token is None:
            raise ForbiddenError(words("refused.sign_in"))
        if role is not None and not visitor.may(role):
            raise ForbiddenError(words("refused.role", role=words(f"role.{role}")))

    async def _token(self, session: Session) -> ApiToken | None:
        if not session.token:
            return None
        try:
            token = await self.tokens.get(session.token)
        except NotFoundError:
            return None
        same = token.active and token.created_at == session.token_created
        return token if same else None


def _here(request: Request) -> str:
    if request.method != "GET":
        return "/ui/"
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")
