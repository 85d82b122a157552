"""NaN, Infinity and 1e999 in a request: 422 naming the field, never a 500.

Python's JSON parser takes `NaN`, `Infinity`, `-Infinity` and numbers that
overflow to infinity, and JSON cannot carry them back. Every field of every
body in the table of /v1/ endpoints (`test_admin_roles.ENDPOINTS`) gets each
of them in turn, and a field the body does not have is tried too; the answer
is a 422 problem whose `errors` name the field (its location and its JSON
pointer), and a float query parameter refuses them as well.

The module shares one API (building the app is most of a test's time): every request
here is refused before it reaches a service, which is what is tested, so no test
changes what another sees.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.support.admin import AdminApi, admin_api
from tests.unit.test_admin_roles import ENDPOINTS
from ugem.core.services.tokens import Role

NOT_FINITE = ["NaN", "Infinity", "-Infinity", "1e999"]
BODIES = [(m, p, b) for m, p, b, *_ in ENDPOINTS if isinstance(b, dict)]
CASES = [
    pytest.param(method, path, body, key, id=f"{method} {path} {key}")
    for method, path, body in BODIES
    for key in [*body, "extra_field"]
]


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AdminApi]:
    async with admin_api(tmp_path_factory.mktemp("admin-numbers")) as api:
        yield api


async def send(api: AdminApi, method: str, path: str, text: str) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {api.secrets[Role.ADMIN]}",
        "Content-Type": "application/json",
    }
    return await api.client.request(method, path, content=text.encode(), headers=headers)


@pytest.mark.parametrize(("method", "path", "body", "key"), CASES)
async def test_a_number_json_cannot_carry_is_422_naming_the_field(
    api: AdminApi, method: str, path: str, body: dict[str, Any], key: str
) -> None:
    path = path.replace("{app}", "APP1").replace("{override}", "OVR1")
    for number in NOT_FINITE:
        text = json.dumps(body | {key: "@@"}).replace('"@@"', number)
        answer = await send(api, method, path, text)
        assert answer.status_code == 422, (number, answer.text)
        problem = answer.json()
        assert answer.headers["content-type"] == "application/problem+json", answer.text
        named = [e for e in problem["errors"] if e["loc"][-1] == key]
        assert named, answer.text
        assert any(key in e["detail"] for e in named), answer.text
        assert all(e["pointer"] == f"#/{key}" for e in named), answer.text


async def test_a_float_query_parameter_refuses_them_too(api: AdminApi) -> None:
    for number in ("nan", "inf", "-inf", "1e999"):
        answer = await api.call("GET", f"/v1/queue?older_than={number}")
        assert answer.status_code == 422, (number, answer.text)
        [error] = answer.json()["errors"]
        assert error["loc"] == ["query", "older_than"] and error["pointer"] is None
