"""Applications through the API: deadline, overdue list and metric, checks, decisions, 30 days.

Time is a `FakeClock` set to Almaty wall-clock moments; nothing sleeps.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.admin import AdminApi, admin_api
from tests.support.connections import plain
from ugem.core.clock import FakeClock
from ugem.core.services.applications import Finding
from ugem.core.workdays import ALMATY


def almaty(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=ALMATY).timestamp()


FORM: dict[str, Any] = {
    "number": "0417",
    "channel": "letter",
    "domain": "akimat.gov.kz",
    "domain_owner": "Akimat of the city",
    "servers": ["203.0.113.25"],
    "org_name": "Akimat of the city",
    "kind": "local-government",
    "contacts": [
        {
            "full_name": "Ivanov Ivan Ivanovich",
            "email": "it@akimat.gov.kz",
            "office_phone": "+7 7172 00-00-01",
            "mobile": "+7 701 000 00 01",
        }
    ],
    "language": "kk",
}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with admin_api(tmp_path, FakeClock(almaty("2026-12-14T10:00"))) as api:
        yield api


async def receive(api: AdminApi, **change: Any) -> dict[str, Any]:
    answer = await api.call("POST", "/v1/applications", body=FORM | change)
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def overdue_metric(api: AdminApi) -> float:
    value = api.metrics.registry.get_sample_value("ugem_applications_overdue")
    assert value is not None
    return value


async def test_due_in_five_working_days_then_listed_and_counted_overdue(api: AdminApi) -> None:
    app = await receive(api)
    assert app["decision_due"] == "2026-12-22"  # across Independence Day and a weekend
    assert (app["state"], app["overdue"], app["channel"]) == ("pending", False, "letter")
    late = "/v1/applications?state=pending&overdue=true"
    api.clock.set(almaty("2026-12-22T23:59"))
    assert (await api.call("GET", late)).json()["items"] == []
    assert overdue_metric(api) == 0
    api.clock.set(almaty("2026-12-23T00:01"))
    [listed] = (await api.call("GET", late)).json()["items"]
    assert listed["id"] == app["id"] and listed["overdue"] is True
    assert overdue_metric(api) == 1  # computed at the scrape, from the clock


async def test_a_receipt_in_the_past_is_dated_by_its_own_day(api: AdminApi) -> None:
    app = await receive(api, received_at=almaty("2024-12-30T09:00"))
    assert app["decision_due"] == "2025-01-09"


async def test_checks_run_what_they_can_and_take_the_operators_findings(api: AdminApi) -> None:
    await api.store.add(plain("other.gov.kz", "10.1.2.0/24"))
    api.dns_ready.add("akimat.gov.kz")
    app = await receive(api, servers=["10.1.2.3"])
    checked = await api.call("POST", f"/v1/applications/{app['id']}/checks", body={})
    found = {c["name"]: (c["ok"], c["by"]) for c in checked.json()["checks"]}
    assert found == {
        "eligible": (True, "auto"),
        "routable": (False, "auto"),
        "servers-free": (False, "auto"),
        "domain-free": (True, "auto"),
        "mx": (True, "auto"),
        "spf": (True, "auto"),
        "dkim": (True, "auto"),
        "dmarc": (True, "auto"),
    }
    refused = await api.call(
        "POST", f"/v1/applications/{app['id']}/decision", body={"decision": "connect"}
    )
    assert refused.status_code == 409
    assert "routable, servers-free" in refused.json()["detail"]


async def test_a_dns_check_that_breaks_is_a_failed_finding(api: AdminApi) -> None:
    async def broken(domain: str) -> list[Finding]:
        raise RuntimeError(f"no resolver for {domain}")

    api.services.applications.dns_check = broken
    app = await receive(api)
    checked = await api.call("POST", f"/v1/applications/{app['id']}/checks", body={})
    assert checked.status_code == 200, checked.text
    assert checked.json()["checks"][-1] == {
        "name": "dns",
        "ok": False,
        "note": "DNS readiness check failed: no resolver for akimat.gov.kz",
        "by": "auto",
    }


async def test_connect_creates_the_connection_and_audits(api: AdminApi) -> None:
    api.dns_ready.add("akimat.gov.kz")
    app = await receive(api)
    findings = {
        "findings": [
            {"name": "channel", "ok": True, "note": "tested with swaks"},
            {"name": "routable", "ok": True, "note": "reached over the state network"},
        ]
    }
    checked = await api.call("POST", f"/v1/applications/{app['id']}/checks", body=findings)
    assert all(c["ok"] for c in checked.json()["checks"]), checked.text
    decided = await api.call(
        "POST", f"/v1/applications/{app['id']}/decision", body={"decision": "connect"}
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["state"] == "connected"
    conn = api.registry.by_address("203.0.113.25")
    assert conn is not None and conn.id == "akimat.gov.kz" and conn.language == "kk"
    assert conn.extra["application_number"] == "0417"
    again = await api.call(
        "POST", f"/v1/applications/{app['id']}/decision", body={"decision": "connect"}
    )
    assert again.status_code == 409 and "was connected" in again.json()["detail"]
    log = (await api.call("GET", "/v1/audit")).json()["items"]
    assert [e["action"] for e in log][:4] == [
        "application.connect",
        "connection.add",
        "application.check",
        "application.receive",
    ]


async def test_a_rejection_needs_a_reason(api: AdminApi) -> None:
    app = await receive(api)
    answer = await api.call(
        "POST", f"/v1/applications/{app['id']}/decision", body={"decision": "reject"}
    )
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["loc"] == ["body", "reasons"]


async def test_a_rejected_domain_applies_again_after_thirty_days(api: AdminApi) -> None:
    api.clock.set(almaty("2027-03-01T10:00"))
    app = await receive(api)
    reject = {"decision": "reject", "reasons": ["no technical capability: no MX"]}
    decided = await api.call("POST", f"/v1/applications/{app['id']}/decision", body=reject)
    assert decided.json()["reasons"] == ["no technical capability: no MX"]
    api.clock.set(almaty("2027-03-31T23:59"))  # the thirtieth day after the rejection
    early = await api.call("POST", "/v1/applications", body=FORM)
    assert early.status_code == 409
    assert "accepted from 2027-04-01" in early.json()["detail"]
    api.clock.set(almaty("2027-04-01T00:00"))
    await receive(api)
    pending = await api.call("POST", "/v1/applications", body=FORM)
    assert pending.status_code == 409 and "is pending" in pending.json()["detail"]


async def test_bad_forms_are_422_naming_the_field(api: AdminApi) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kind": "ministry"}, "kind"),
        ({"domain": "not a domain"}, "domain"),
        ({"servers": ["mail.example.org"]}, "servers"),
        ({"contacts": []}, "contacts"),
        ({"channel": "fax"}, "channel"),
    ]
    for change, field in cases:
        answer = await api.call("POST", "/v1/applications", body=FORM | change)
        assert answer.status_code == 422, (change, answer.text)
        assert answer.json()["errors"][0]["loc"][-1] == field, answer.text
