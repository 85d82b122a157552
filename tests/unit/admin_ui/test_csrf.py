"""CSRF: a token per session in every form, checked in constant time on every POST."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from admin.ui import csrf
from tests.support.admin import AdminApi, admin_api
from tests.support.connections import plain
from tests.support.console import console_client, csrf_of, signed_in
from ugem.core.model import ConnState
from ugem.core.services.tokens import Role


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with admin_api(tmp_path) as api:
        await api.store.add(plain("a.gov.kz", "192.0.2.10"))
        yield api


def test_tokens_differ_by_session_and_key() -> None:
    token = csrf.token_for(b"k" * 32, "nonce")
    assert csrf.valid(b"k" * 32, "nonce", token)
    assert not csrf.valid(b"k" * 32, "other", token)
    assert not csrf.valid(b"j" * 32, "nonce", token)
    assert not csrf.valid(b"k" * 32, "nonce", None)
    assert not csrf.valid(b"k" * 32, "nonce", token[:-1])


async def test_every_form_of_a_page_carries_the_token(api: AdminApi) -> None:
    async with signed_in(api, Role.ADMIN) as (client, token):
        page = (await client.get("/ui/connections/a.gov.kz")).text
        forms = re.findall(r'<form method="post".*?</form>', page, re.S)
        assert len(forms) >= 4  # language, sign-out, suspend, disconnect
        assert all(f'name="csrf" value="{token}"' in form for form in forms)


@pytest.mark.parametrize("given", [None, "", "0" * 64, "wrong"])
async def test_a_post_without_this_sessions_token_is_refused(
    api: AdminApi, given: str | None
) -> None:
    async with signed_in(api, Role.ADMIN) as (client, _):
        form = {"reason": "spam", "confirm": "yes"} | ({} if given is None else {"csrf": given})
        refused = await client.post("/ui/connections/a.gov.kz/suspend", data=form)
        assert refused.status_code == 403
        assert "did not come from this console" in refused.text
    assert (await api.services.connections.get("a.gov.kz")).state == ConnState.CONNECTED


async def test_another_sessions_token_is_refused(api: AdminApi) -> None:
    async with (
        signed_in(api, Role.OPERATOR) as (_, theirs),
        signed_in(api, Role.ADMIN) as (
            client,
            _,
        ),
    ):
        form = {"csrf": theirs, "reason": "spam", "confirm": "yes"}
        assert (await client.post("/ui/connections/a.gov.kz/suspend", data=form)).status_code == 403


async def test_the_sign_in_form_needs_its_token_too(api: AdminApi) -> None:
    async with console_client(api) as client:
        await client.get("/ui/sign-in")
        refused = await client.post("/ui/sign-in", data={"token": api.secrets[Role.ADMIN]})
        assert refused.status_code == 403
        form = await client.get("/ui/sign-in")
        ok = await client.post(
            "/ui/sign-in", data={"csrf": csrf_of(form.text), "token": api.secrets[Role.ADMIN]}
        )
        assert ok.status_code == 303
