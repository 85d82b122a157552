"""The web console as an application the admin listener mounts at /ui/.

`console_app(services, settings)` builds it: the sign-in, Overview,
Connections, Applications, Incidents, Queue and Audit pages
(`admin.ui.sign_in`, `.overview`, `.connections`, `.applications`,
`.incidents`, `.queue`, `.audit`), the assets under /ui/static/ (package
data: no CDN, nothing fetched at run time), the security headers around all
of it (`admin.ui.headers`), and the error pages: a service's error
(`UgemError`) is answered with the status the API gives it
(`admin.errors.status_of`: 403, 404, 409, 422, 503) and its message,
escaped, in a page; a page asked before a sign-in 303 to the sign-in page
(`admin.ui.console.SignInFirst`); an unknown path 404; anything else is logged
(`ui_error`) and answered 500 without details. The catalogues are checked at
build time (`UgemError` if they differ). The session key is drawn here, so
a new node process signs every operator out.
"""

from __future__ import annotations

import logging
import secrets
import traceback
from importlib import resources

from fastapi import APIRouter, FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from admin.api import OperatorServices
from admin.errors import status_of
from admin.ui import applications, audit, connections, incidents, overview, queue, sign_in
from admin.ui.console import Console, SignInFirst, sign_in_first
from admin.ui.headers import SecurityHeaders
from admin.ui.i18n import Catalogues
from admin.ui.render import Renderer
from admin.ui.session import Sessions
from admin.ui.visitor import Doorman
from ugem.core.config import AdminConfig
from ugem.core.errors import UgemError
from ugem.core.log import event

log = logging.getLogger(__name__)
MOUNT = "/ui"


def console_app(services: OperatorServices, settings: AdminConfig | None = None) -> FastAPI:
    settings = settings or AdminConfig()
    sessions = Sessions(secrets.token_bytes(32), settings.console_session, services.tokens.clock)
    doorman = Doorman(sessions, services.tokens, Catalogues.load())
    console = Console(services, doorman, Renderer(sessions))
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    for router in routers(console):
        app.include_router(router)
    static = resources.files("admin.ui") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    _errors(app, console)
    app.add_middleware(SecurityHeaders)
    return app


def routers(console: Console) -> list[APIRouter]:
    """The console's pages, one router per module."""
    return [
        module.router(console)
        for module in (sign_in, overview, connections, applications, incidents, queue, audit)
    ]


def _errors(app: FastAPI, console: Console) -> None:
    async def page(request: Request, status: int, message: str) -> Response:
        try:
            visitor = await console.visitor(request)
        except UgemError:  # the store is down: the page without who signed in
            visitor = await console.doorman.visitor(request, look_up=False)
        return console.renderer.page(visitor, "error.html", status, message=message)

    async def failed(request: Request, exc: Exception) -> Response:
        status = status_of(exc)
        if status is None:
            return await bug(request, exc)
        return await page(request, status, str(exc))

    async def http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        visitor = await console.doorman.visitor(request, look_up=False)
        key = f"error.{exc.status_code}"
        key = key if key in visitor.words.texts else "error.other"
        return await page(request, exc.status_code, visitor.words(key))

    async def bug(request: Request, exc: Exception) -> Response:
        trace = "".join(traceback.format_exception(exc))
        event(log, "ui_error", logging.ERROR, path=request.url.path, error=repr(exc), trace=trace)
        visitor = await console.doorman.visitor(request, look_up=False)
        return await page(request, 500, visitor.words("error.500"))

    async def signed_out(_request: Request, _exc: Exception) -> Response:
        return sign_in_first()

    app.add_exception_handler(SignInFirst, signed_out)
    app.add_exception_handler(UgemError, failed)
    app.add_exception_handler(HTTPException, http)
    app.add_exception_handler(Exception, bug)
