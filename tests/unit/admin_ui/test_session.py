"""The session cookie: signed, HttpOnly, SameSite=Strict, Path=/ui/, Secure over TLS, bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.responses import Response

from admin.ui.session import COOKIE, Sessions
from tests.support.admin import AdminApi, admin_api
from tests.support.console import console_client, csrf_of, sign_in, signed_in
from ugem.core.clock import FakeClock
from ugem.core.config import AdminConfig
from ugem.core.services.tokens import Role

LIFETIME = AdminConfig().console_session


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with admin_api(tmp_path) as api:
        yield api


def test_a_cookie_reads_back_and_a_forged_or_old_one_does_not() -> None:
    clock = FakeClock()
    sessions = Sessions(b"k" * 32, 60.0, clock)
    session = sessions.new("op", 12.5)
    cookie = sessions.write(session)
    assert sessions.read(cookie) == session
    payload, _, signature = cookie.partition(".")
    assert sessions.read(f"{payload}.{'0' * len(signature)}") is None  # forged
    assert Sessions(b"x" * 32, 60.0, clock).read(cookie) is None  # another key (a restart)
    assert sessions.read("not-a-cookie") is None
    assert sessions.read(None) is None
    clock.advance(60.0)
    assert sessions.read(cookie) is None  # expired


def test_the_cookie_attributes() -> None:
    sessions = Sessions(b"k" * 32, 3600.0, FakeClock())
    plain, tls = Response(), Response()
    sessions.attach(plain, sessions.new(), secure=False)
    sessions.attach(tls, sessions.new(), secure=True)
    header = plain.headers["set-cookie"]
    assert header.startswith(f"{COOKIE}=")
    for part in ("HttpOnly", "Max-Age=3600", "Path=/ui/", "SameSite=strict"):
        assert part in header
    assert "Secure" not in header
    assert "Secure" in tls.headers["set-cookie"]


async def test_sign_in_makes_a_new_session_and_sign_out_ends_it(api: AdminApi) -> None:
    async with console_client(api) as client:
        before = (await client.get("/ui/sign-in")).cookies[COOKIE]
        csrf = await sign_in(client, api.secrets[Role.VIEWER])
        assert client.cookies[COOKIE] != before  # no session fixation
        assert "viewer-token" in (await client.get("/ui/")).text
        out = await client.post("/ui/sign-out", data={"csrf": csrf})
        assert (out.status_code, out.headers["location"]) == (303, "/ui/sign-in")
        again = await client.get("/ui/")
        assert (again.status_code, again.headers["location"]) == (303, "/ui/sign-in")


async def test_a_wrong_token_is_refused(api: AdminApi) -> None:
    async with console_client(api) as client:
        form = await client.get("/ui/sign-in")
        wrong = await client.post("/ui/sign-in", data={"csrf": csrf_of(form.text), "token": "x"})
        assert wrong.status_code == 401
        assert "unknown or revoked" in wrong.text
        assert (await client.get("/ui/")).status_code == 303


async def test_a_session_ends_with_its_lifetime_or_its_token(api: AdminApi) -> None:
    async with signed_in(api, Role.OPERATOR) as (client, _):
        assert (await client.get("/ui/connections")).status_code == 200
        api.clock.advance(LIFETIME)
        assert (await client.get("/ui/connections")).status_code == 303
    async with signed_in(api, Role.VIEWER) as (client, _):
        await api.services.tokens.revoke("viewer-token", "test")
        assert (await client.get("/ui/connections")).status_code == 303
    async with signed_in(api, Role.ADMIN) as (client, _):
        await api.services.tokens.create("admin-token", Role.ADMIN, "test", replace=True)
        assert (await client.get("/ui/connections")).status_code == 303  # replaced: another token
