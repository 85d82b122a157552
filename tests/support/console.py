"""The web console (/ui/) as a browser without JavaScript sees it, for unit tests.

`console_client(api)` is an `httpx.AsyncClient` on the app of an `admin_api`
(ASGI, no socket) with its own cookie jar, so each test's visitor has its own
session; `sign_in(client, secret)` signs it in through the sign-in form and
returns the CSRF token of its new session (`csrf_of(html)` reads one from a
page). `signed_in(api, role)` is both for a role's token of the `admin_api`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import httpx

from tests.support.admin import AdminApi
from ugem.core.services.tokens import Role

CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, f"no CSRF token in the page: {html[:500]}"
    return found.group(1)


@contextlib.asynccontextmanager
async def console_client(api: AdminApi) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api.app)
    headers = {"Accept-Language": "en"}  # the tests read the English words
    async with httpx.AsyncClient(
        transport=transport, base_url="http://admin.test", headers=headers
    ) as client:
        yield client


async def sign_in(client: httpx.AsyncClient, secret: str) -> str:
    form = await client.get("/ui/sign-in")
    answer = await client.post("/ui/sign-in", data={"csrf": csrf_of(form.text), "token": secret})
    assert answer.status_code == 303, answer.text
    home = await client.get("/ui/")
    assert home.status_code == 200, home.text
    return csrf_of(home.text)


@contextlib.asynccontextmanager
async def signed_in(api: AdminApi, role: Role) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client signed in with the `admin_api`'s token of `role`, and its CSRF token."""
    async with console_client(api) as client:
        yield client, await sign_in(client, api.secrets[role])
