"""The documentation pages work on an isolated network: every asset comes from the node.

`/docs` (Swagger UI) and `/redoc` are fetched from a running admin listener on
loopback, then every script, style sheet, icon and schema they name; each
answers 200 with content, and no page names anything outside the node.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from admin.docs import ASSETS
from tests.support.admin import admin_api, listening

REFERENCES = re.compile(r"""(?:src|href|spec-url)="([^"]+)"|url: '([^']+)'""")


async def test_the_pages_and_every_asset_they_name_come_from_the_node(tmp_path: Path) -> None:
    async with (
        admin_api(tmp_path) as api,
        listening(api.app) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        for page in ("/docs", "/redoc"):
            answer = await http.get(page)
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"].startswith("text/html")
            html = answer.text
            assert "http://" not in html and "https://" not in html and "//" not in html
            found = {a or b for a, b in REFERENCES.findall(html)}
            assert "/openapi.json" in found, html
            assets = found - {"/openapi.json"}
            assert assets and all(a.startswith(f"{ASSETS}/") for a in assets), found
            for ref in sorted(found):
                fetched = await http.get(ref)
                assert fetched.status_code == 200, ref
                assert len(fetched.content) > 1000, ref  # the real bundle, not a stub


async def test_the_swagger_page_loads_the_script_and_style_it_needs(tmp_path: Path) -> None:
    async with admin_api(tmp_path) as api:
        html = (await api.client.get("/docs")).text
        script = await api.client.get(f"{ASSETS}/swagger-ui-bundle.js")
        style = await api.client.get(f"{ASSETS}/swagger-ui.css")
    assert f'src="{ASSETS}/swagger-ui-bundle.js"' in html
    assert f'href="{ASSETS}/swagger-ui.css"' in html
    assert "SwaggerUIBundle" in script.text and ".swagger-ui" in style.text
    assert '"validatorUrl": null' in html  # no badge fetched from the public validator
