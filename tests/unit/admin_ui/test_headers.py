"""Every answer under /ui/ carries the strict CSP and the other security headers."""

from __future__ import annotations

import re
from pathlib import Path

from admin.ui.headers import CSP
from tests.support.admin import admin_api
from tests.support.connections import plain
from tests.support.console import console_client, signed_in
from ugem.core.services.tokens import Role

STRICT = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


async def test_pages_assets_redirects_and_errors_have_the_headers(tmp_path: Path) -> None:
    async with admin_api(tmp_path) as api:
        await api.store.add(plain("a.gov.kz", "192.0.2.10"))
        async with console_client(api) as anonymous:
            answers = [
                await anonymous.get("/ui/"),  # 303 to the sign-in
                await anonymous.get("/ui/sign-in"),
                await anonymous.get("/ui/static/console.css"),
                await anonymous.get("/ui/static/console.js"),
                await anonymous.post("/ui/sign-out"),  # 403: no CSRF token
                await anonymous.get("/ui/no-such-page"),
            ]
        async with signed_in(api, Role.VIEWER) as (client, _):
            answers += [
                await client.get("/ui/"),
                await client.get("/ui/connections"),
                await client.get("/ui/connections/a.gov.kz"),
                await client.get("/ui/connections/nobody.gov.kz"),  # 404 of the service
            ]
        statuses = [a.status_code for a in answers]
        assert statuses == [303, 200, 200, 200, 403, 404, 200, 200, 200, 404]
        for answer in answers:
            for name, value in STRICT.items():
                assert answer.headers[name] == value, (answer.url, name)
        assert "no-store" in answers[1].headers["cache-control"]
        assert "cache-control" not in answers[2].headers  # the assets may be cached


async def test_no_inline_script_or_style(tmp_path: Path) -> None:
    async with admin_api(tmp_path) as api:
        await api.store.add(plain("a.gov.kz", "192.0.2.10"))
        async with signed_in(api, Role.ADMIN) as (client, _):
            for path in ("/ui/", "/ui/connections", "/ui/connections/a.gov.kz"):
                html = (await client.get(path)).text
                assert html.count("<script") == html.count('<script src="/ui/static/') == 1
                assert "style=" not in html and "<style" not in html
                assert not re.search(r"<[^>]*\son[a-z]+=", html)  # no onclick= and the like
