"""Every error of the admin listener is one RFC 9457 problem, and the schema says which.

Each kind of error is provoked through the API over real services: no token
(401), a role too weak (403), an unknown id and an unknown route (404), a
method the route does not take (405), a state that forbids it (409), a body
over the limit (413), a field that is wrong (422, with its `errors`), a body
that is not JSON (400, saying where), a store refused (503), a bug (500, its
details in the log only). Each answer is
`application/problem+json` with `type`, `title`, `status` and `detail`. The
OpenAPI schema gives each operation only the errors it can answer, all as
problems (but /readyz's 503, the readiness itself): a list cannot 404 or 409,
403 only where a role above viewer is needed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.admin import AdminApi, admin_api
from tests.support.connections import plain
from ugem.core.config import AdminConfig
from ugem.core.registry_watch import REFUSED
from ugem.core.services.tokens import Role


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with admin_api(tmp_path, settings=AdminConfig(max_body_size=4096)) as api:
        await api.store.add(plain("a.gov.kz", "192.0.2.10"))
        await api.registry.sync()
        yield api


def problem_of(answer: httpx.Response, status: int) -> dict[str, object]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json", answer.text
    body: dict[str, object] = answer.json()
    assert {"type", "title", "status", "detail"} <= set(body), body
    assert body["status"] == status and str(body["type"]).startswith("urn:ugem:problem:")
    assert isinstance(body["detail"], str) and body["detail"], body
    return body


async def test_each_kind_of_error_is_a_problem(api: AdminApi) -> None:
    problem_of(await api.call("GET", "/v1/connections", None), 401)
    problem_of(await api.call("POST", "/v1/connections/a.gov.kz/suspend", Role.VIEWER, {}), 403)
    unknown = problem_of(await api.call("GET", "/v1/connections/nobody.gov.kz"), 404)
    assert unknown["detail"] == "no connection 'nobody.gov.kz'"
    route = problem_of(await api.call("GET", "/v1/nothing/here"), 404)
    assert route["detail"] == "no route /v1/nothing/here; the API is under /v1/ (see /docs)"
    problem_of(await api.client.get("/nothing"), 404)  # outside /v1/: no token needed
    wrong = await api.call("PUT", "/v1/connections/a.gov.kz", body={})
    assert "PUT is not allowed" in str(problem_of(wrong, 405)["detail"])
    assert wrong.headers["allow"] == "GET, PATCH"
    resume = problem_of(await api.call("POST", "/v1/connections/a.gov.kz/resume", body={}), 409)
    assert "not suspended" in str(resume["detail"])
    big = await api.call("POST", "/v1/connections/a.gov.kz/suspend", body={"reason": "x" * 5000})
    assert "max_body_size" in str(problem_of(big, 413)["detail"])


async def test_a_wrong_field_names_it_and_a_broken_body_says_where(api: AdminApi) -> None:
    answer = await api.call("PATCH", "/v1/connections/a.gov.kz", body={"servers": [], "x": 1})
    invalid = problem_of(answer, 422)
    errors = invalid["errors"]
    assert isinstance(errors, list) and len(errors) == 2
    assert {(e["pointer"], e["loc"][-1]) for e in errors} == {
        ("#/servers", "servers"),
        ("#/x", "x"),
    }
    assert str(invalid["detail"]).endswith("(and 1 more: see errors)")
    headers = {"Authorization": f"Bearer {api.secrets[Role.ADMIN]}"}
    broken = await api.client.post(
        "/v1/connections/a.gov.kz/suspend",
        content=b'{\n  "reason": "spam",\n  oops\n}',
        headers=headers | {"Content-Type": "application/json"},
    )
    detail = problem_of(broken, 400)["detail"]
    assert detail == (
        "the body is not valid JSON: Expecting property name enclosed in double quotes "
        "at line 3 column 3 (character 24)"
    )


async def test_a_store_that_refuses_is_503(api: AdminApi) -> None:
    api.registry.watch._trouble(REFUSED, "the store has no generation: it is empty")
    answer = await api.call("POST", "/v1/connections/a.gov.kz/suspend", body={"reason": "x"})
    assert str(problem_of(answer, 503)["detail"]).startswith("the store is refused")


async def test_the_schema_lists_only_the_errors_each_operation_can_answer(api: AdminApi) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    problem = schema["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail"} <= set(problem["required"])
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            errors = {int(c) for c in operation["responses"] if int(c) >= 400}
            for code in errors - ({503} if path == "/readyz" else set()):  # its own body
                content = operation["responses"][str(code)]["content"]
                assert list(content) == ["application/problem+json"], (path, method, code)
            if not path.startswith("/v1/"):
                continue
            assert {401, 503} <= errors, (path, method)
            assert (400 in errors) == (413 in errors) == ("requestBody" in operation)
            if method == "get" and "{" not in path:  # a list or a status: nothing to find
                assert not errors & {404, 409}, (path, method, errors)
            roles = {r for need in operation["security"] for r in need["HTTPBearer"]}
            assert (403 in errors) == (roles != {"viewer"} or path == "/v1/queue/{queue_id}")
    connections = schema["paths"]["/v1/connections/{conn_id}"]
    assert set(connections["get"]["responses"]) == {"200", "401", "404", "422", "503"}
    assert set(connections["patch"]["responses"]) == {
        "200", "400", "401", "403", "404", "409", "413", "422", "503"
    }  # fmt: skip


async def test_a_bug_is_a_500_problem_that_keeps_its_details_in_the_log(
    api: AdminApi, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken() -> None:
        raise RuntimeError("internal state: secret")

    api.app.add_api_route("/broken", broken)
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as http:
        answer = await http.get("/broken")
    problem_of(answer, 500)
    assert "secret" not in answer.text
    assert [r.getMessage() for r in caplog.records if r.name == "admin.errors"] == ["admin_error"]
