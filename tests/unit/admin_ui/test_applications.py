"""The Applications pages: the inbox by decision due, an application checked and decided."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.admin import AdminApi, admin_api
from tests.support.console import signed_in
from ugem.core.model import Contact
from ugem.core.services.applications import Application, ApplicationForm, AppState, Decision
from ugem.core.services.tokens import Role

DAY = 86400.0


def form(domain: str, number: str, received_at: float | None = None) -> ApplicationForm:
    return ApplicationForm(
        number=number,
        domain=domain,
        domain_owner="Akimat",
        servers=["203.0.113.25"],  # not global: the "routable" check fails until found ok
        org_name=f"<b>Akimat</b> of {domain}",
        kind="local-government",
        contacts=[Contact("Ivanov Ivan", f"it@{domain}")],
        received_at=received_at,
    )


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with admin_api(tmp_path) as api:
        api.clock.advance(20 * DAY)  # past the new year's days off
        yield api


async def received(api: AdminApi, domain: str, number: str, ago: float = 0.0) -> Application:
    at = api.clock.now() - ago
    return await api.services.applications.receive(form(domain, number, at), "test")


async def test_the_inbox_is_ordered_by_decision_due_and_marks_the_overdue(api: AdminApi) -> None:
    await received(api, "new.gov.kz", "2")
    await received(api, "old.gov.kz", "1", ago=14 * DAY)
    done = await received(api, "done.gov.kz", "3", ago=DAY)
    await api.services.applications.decide(done.id, Decision.REJECT, ["no capability"], "test")
    async with signed_in(api, Role.VIEWER) as (client, _):
        page = (await client.get("/ui/applications")).text
    assert page.index("№ 1<") < page.index("№ 2<") < page.index("№ 3<")
    assert "Awaiting a decision (2)" in page and "Decided (1)" in page
    assert '<tr class="overdue">' in page and "overdue (" in page
    assert "5 working days" in page  # received today: five working days left
    assert "&lt;b&gt;Akimat&lt;/b&gt;" in page and "<b>Akimat" not in page
    assert page.count('<tr class="overdue">') == 1


async def test_an_operator_checks_then_connects_and_the_notice_is_sent(api: AdminApi) -> None:
    app = await received(api, "c.gov.kz", "17")
    api.dns_ready.add("c.gov.kz")
    page_path = f"/ui/applications/{app.id}"
    async with signed_in(api, Role.OPERATOR) as (client, csrf):
        page = (await client.get(page_path)).text
        assert "Not checked yet." in page and "/decision" in page  # reject only
        assert 'value="connect"' not in page
        asked = await client.post(f"{page_path}/checks", data={"csrf": csrf})
        assert "Check application No. 17 (c.gov.kz) now?" in asked.text
        ran = await client.post(f"{page_path}/checks", data={"csrf": csrf, "confirm": "yes"})
        assert ran.headers["location"] == f"{page_path}?done=checks"
        page = (await client.get(page_path)).text
        assert "not global: 203.0.113.25" in page and 'value="connect"' not in page
        found = {"csrf": csrf, "check.routable": "ok", "note": "over the STS channel"}
        asked = await client.post(f"{page_path}/checks", data=found)
        assert "routable" in asked.text and "over the STS channel" in asked.text
        await client.post(f"{page_path}/checks", data=found | {"confirm": "yes"})
        page = (await client.get(page_path)).text
        assert 'value="connect"' in page and '<option value="ok" selected>' in page
        again = {"csrf": csrf, "check.routable": "ok", "confirm": "yes"}  # as preselected
        await client.post(f"{page_path}/checks", data=again)
        assert "over the STS channel" in (await client.get(page_path)).text  # kept
        decide = {"csrf": csrf, "decision": "connect"}
        asked = await client.post(f"{page_path}/decision", data=decide)
        assert "Connect &lt;b&gt;Akimat&lt;/b&gt; of c.gov.kz (c.gov.kz)" in asked.text
        assert not api.outbox.sent  # not before it is confirmed
        done = await client.post(f"{page_path}/decision", data=decide | {"confirm": "yes"})
        assert done.headers["location"] == f"{page_path}?done=decision"
        page = (await client.get(done.headers["location"])).text
        assert "The decision is made" in page and "/checks" not in page
        assert "The notice cannot be shown here" in page  # no message index in this API
    decided = await api.services.applications.get(app.id)
    assert (decided.state, decided.decided_by) == (AppState.CONNECTED, "api:operator-token")
    [routable] = [f for f in decided.checks if f.name == "routable"]
    assert (routable.ok, routable.by) == (True, "api:operator-token")
    [notice] = api.outbox.sent
    assert notice.rcpts == ("it@c.gov.kz",)
    assert (await api.services.connections.get("c.gov.kz")).org_name.endswith("c.gov.kz")


async def test_a_rejection_needs_its_reasons_and_names_them(api: AdminApi) -> None:
    app = await received(api, "r.gov.kz", "5")
    path = f"/ui/applications/{app.id}/decision"
    async with signed_in(api, Role.OPERATOR) as (client, csrf):
        empty = await client.post(path, data={"csrf": csrf, "decision": "reject", "reasons": " "})
        assert empty.status_code == 422 and "at least one reason" in empty.text
        odd = await client.post(path, data={"csrf": csrf, "decision": "merge"})
        assert odd.status_code == 422
        reasons = "no technical capability\n<i>no MX</i>\n"
        form_ = {"csrf": csrf, "decision": "reject", "reasons": reasons, "confirm": "yes"}
        assert (await client.post(path, data=form_)).status_code == 303
        page = (await client.get(f"/ui/applications/{app.id}")).text
        assert "<li>&lt;i&gt;no MX&lt;/i&gt;</li>" in page
        again = await client.post(path, data=form_)
        assert again.status_code == 409  # decided: the service's rule, in a page
    rejected = await api.services.applications.get(app.id)
    assert rejected.reasons == ("no technical capability", "<i>no MX</i>")


async def test_a_viewer_sees_no_form(api: AdminApi) -> None:
    app = await received(api, "v.gov.kz", "9")
    async with signed_in(api, Role.VIEWER) as (client, _):
        page = (await client.get(f"/ui/applications/{app.id}")).text
        assert "/checks" not in page and "/decision" not in page
        assert (await client.get("/ui/applications/nope")).status_code == 404
