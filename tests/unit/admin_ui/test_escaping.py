"""Every value from the data comes out escaped: an organisation's name, a reason, a search."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.support.admin import admin_api
from tests.support.connections import plain
from tests.support.console import signed_in
from ugem.core.model import Contact
from ugem.core.services.tokens import Role

EVIL = '<script>alert("x")</script>'
ESCAPED = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"


async def test_hostile_text_is_escaped_on_every_page(tmp_path: Path) -> None:
    async with admin_api(tmp_path) as api:
        conn = plain("a.gov.kz", "192.0.2.10")
        contact = Contact(EVIL, "it@a.gov.kz")
        await api.store.add(dataclasses.replace(conn, org_name=EVIL, contacts=(contact,)))
        await api.services.connections.suspend("a.gov.kz", EVIL, "test")
        async with signed_in(api, Role.OPERATOR) as (client, csrf):
            pages = [
                await client.get("/ui/connections"),
                await client.get("/ui/connections", params={"text": EVIL}),
                await client.get("/ui/connections/a.gov.kz"),
                await client.post(
                    "/ui/connections/a.gov.kz/resume", data={"csrf": csrf, "reason": EVIL}
                ),
            ]
            for page in pages:
                assert page.status_code == 200, page.text
                assert EVIL not in page.text
            assert all(ESCAPED in page.text for page in pages[2:])
            assert ESCAPED in pages[0].text  # the name in the list
            assert 'value="&lt;script&gt;' in pages[1].text  # the search, given back
