"""Signing in and out of the console, and choosing its language.

GET /ui/sign-in shows the form (a visitor gets an anonymous session, whose
CSRF token the form carries); POST /ui/sign-in checks the token given with
`TokenService.authenticate` (constant time) and, for a live token, answers
with a new session (a new nonce: no fixation) and a 303 to the overview; a
wrong token gets the form again with 401, naming no more than "unknown or
revoked". POST /ui/sign-out replaces the session with an anonymous one. POST
/ui/language remembers the choice in the `ugem_lang` cookie (a year,
`SameSite=Strict`, `Path=/ui/`) and goes back to the page it came from. Every
POST carries the session's CSRF token (`Console.posted`).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from admin.ui.console import Console, back_to, sign_in_first
from admin.ui.i18n import LANGUAGES
from admin.ui.render import BASE
from admin.ui.session import PATH
from admin.ui.visitor import LANG_COOKIE

YEAR = 365 * 86400


def router(console: Console) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    sessions = console.doorman.sessions

    @r.get("/sign-in")
    async def sign_in_form(request: Request) -> Response:
        visitor = await console.visitor(request)
        return console.renderer.page(visitor, "sign_in.html", failed=False)

    @r.post("/sign-in")
    async def sign_in(request: Request) -> Response:
        visitor, form = await console.posted(request, None)
        token = await console.services.tokens.authenticate(form.get("token", ""))
        if token is None:
            return console.renderer.page(visitor, "sign_in.html", 401, failed=True)
        response = back_to(BASE)
        sessions.attach(response, sessions.new(token.name, token.created_at), visitor.secure)
        return response

    @r.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        visitor, _ = await console.posted(request, None)
        response = sign_in_first()
        sessions.attach(response, sessions.new(), visitor.secure)
        return response

    @r.post("/language")
    async def language(request: Request) -> Response:
        visitor, form = await console.posted(request, None)
        response = back_to(form.get("next", BASE))
        lang = form.get("lang", "")
        if lang in LANGUAGES:
            response.set_cookie(
                LANG_COOKIE, lang, YEAR, path=PATH, secure=visitor.secure, samesite="strict"
            )
        return response

    return r
