"""What every page of the console needs: the services, the doorman, the renderer.

`Console` is handed to each page module's `router`. `posted(request, role)`
reads a POST's form and admits it (`admin.ui.visitor.Doorman.admit`: the
session's CSRF token, then the role; `ForbiddenError` otherwise), before the
page acts. `signed_in(request)` is the visitor of a page that needs a
sign-in, or raises `SignInFirst`, which the app answers with `sign_in_first()`:
303 to the sign-in page. `back_to(path)` is the 303 after an action
(post/redirect/get), to a path under /ui/ only (`inside`: anything else is
/ui/, so a `next` field cannot send the browser elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse

from admin.api import OperatorServices
from admin.ui.csrf import FIELD
from admin.ui.forms import read_form
from admin.ui.render import BASE, Renderer
from admin.ui.visitor import Doorman, Visitor
from ugem.core.services.tokens import Role


def inside(path: str) -> str:
    """`path` if it is a path of the console, else the console's home."""
    ok = path.startswith(BASE) and not path.startswith("//") and "\\" not in path
    return path if ok else BASE


def back_to(path: str) -> RedirectResponse:
    return RedirectResponse(inside(path), status_code=303)


def sign_in_first() -> RedirectResponse:
    return back_to(BASE + "sign-in")


class SignInFirst(Exception):
    """A page was asked before a sign-in (answered by `sign_in_first()`, admin.ui.app)."""


@dataclass(frozen=True)
class Console:
    services: OperatorServices
    doorman: Doorman
    renderer: Renderer

    async def visitor(self, request: Request) -> Visitor:
        return await self.doorman.visitor(request)

    async def signed_in(self, request: Request) -> Visitor:
        """The visitor of a page that needs a sign-in; `SignInFirst` if there is none."""
        visitor = await self.visitor(request)
        if visitor.token is None:
            raise SignInFirst
        return visitor

    async def posted(self, request: Request, role: Role | None) -> tuple[Visitor, dict[str, str]]:
        """The visitor and the form of a POST, admitted for `role` (None: anyone)."""
        visitor = await self.visitor(request)
        form = await read_form(request)
        self.doorman.admit(visitor, role, form.get(FIELD))
        return visitor, form
