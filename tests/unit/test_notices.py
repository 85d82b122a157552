"""Notices of decisions: one per decision, in the organisation's language with English below.

Through the API over real services (`tests.support.admin`), with the notices
caught by the test outbox: connecting and rejecting an application, suspending
(plus the operators' alert), resuming, scheduling and applying a
disconnection. Each notice is checked on the wire (`tests.support.mail`). A
failing outbox leaves the decision standing, logged at ERROR and audited as
`notice.failed`. An operator's template replaces the shipped one, and a
broken one is found by `Templates.check` naming the file.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.admin import OPERATORS, POSTMASTER, AdminApi, admin_api
from tests.support.mail import Notice, read_notice
from ugem.core.clock import FakeClock
from ugem.core.errors import ConfigError
from ugem.core.model import Contact, Language
from ugem.core.notices import NoticeKind, Templates
from ugem.core.services.notices import Addressee

T0 = 1_797_915_600.0  # 2026-12-22 10:00 (a Tuesday) in Almaty
CONTACTS = [
    {"full_name": "Сәрсенбаева Әлия Нұрланқызы", "email": "aliya@akimat.gov.kz"},
    {"full_name": "Ivanov Ivan", "email": "it@akimat.gov.kz"},
]
FORM: dict[str, Any] = {
    "number": "0417",
    "domain": "akimat.gov.kz",
    "domain_owner": "Akimat of the city",
    "servers": ["203.0.113.25"],
    "org_name": "Қала әкімдігі",
    "kind": "local-government",
    "contacts": CONTACTS,
    "language": "kk",
}
CONN = "akimat.gov.kz"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with admin_api(tmp_path, FakeClock(T0)) as api:
        yield api


async def ok(api: AdminApi, method: str, path: str, body: Any = None) -> dict[str, Any]:
    answer = await api.call(method, path, body=body)
    assert answer.status_code in (200, 201), answer.text
    result: dict[str, Any] = answer.json()
    return result


async def connected(api: AdminApi, **change: Any) -> dict[str, Any]:
    app = await ok(api, "POST", "/v1/applications", FORM | change)
    api.dns_ready.add(CONN)
    routable = {"name": "routable", "ok": True, "note": "reached over the STS channel"}
    await ok(api, "POST", f"/v1/applications/{app['id']}/checks", {"findings": [routable]})
    return await ok(api, "POST", f"/v1/applications/{app['id']}/decision", {"decision": "connect"})


def last(api: AdminApi, count: int = 1) -> list[Notice]:
    return [read_notice(m.data) for m in api.outbox.sent[-count:]]


async def test_connecting_mails_the_measures_in_kazakh_then_english(api: AdminApi) -> None:
    await connected(api)
    [mail] = api.outbox.sent
    assert mail.sender == POSTMASTER
    assert mail.rcpts == ("aliya@akimat.gov.kz", "it@akimat.gov.kz")
    [notice] = last(api)
    assert notice.header("From") == POSTMASTER
    assert "Сәрсенбаева Әлия Нұрланқызы <aliya@akimat.gov.kz>" in notice.header("To")
    assert notice.header("Content-Language") == "kk, en"
    assert notice.subject == (
        "akimat.gov.kz пошта жүйесі ЭҮЭПБШ-ға қосылды / "
        "Mail system of akimat.gov.kz connected to UGEM"
    )
    kazakh, english = notice.parts
    assert kazakh.startswith("Құрметті әріптестер!")
    assert "№ 0417 өтінім" in kazakh and "«Қала әкімдігі»" in kazakh
    assert english.startswith("Dear colleagues,")
    assert "application No. 0417 of 2026-12-22" in english
    assert "Mail server addresses: 203.0.113.25" in english


async def test_a_rejection_gives_the_reasons_and_the_date_to_apply_again_in_russian(
    api: AdminApi,
) -> None:
    app = await ok(api, "POST", "/v1/applications", FORM | {"language": "ru"})
    reasons = ["нет MX-записи", "server 203.0.113.25 unreachable"]
    body = {"decision": "reject", "reasons": reasons}
    await ok(api, "POST", f"/v1/applications/{app['id']}/decision", body)
    [notice] = last(api)
    assert notice.subject.startswith("Заявка № 0417 на подключение akimat.gov.kz к ЕШЭП отклонена")
    russian, english = notice.parts
    assert "  - нет MX-записи\n  - server 203.0.113.25 unreachable" in russian
    assert "2027-01-22, по истечении тридцати календарных дней" in russian
    assert "from 2027-01-22, thirty calendar days" in english


async def test_suspension_mails_the_evidence_and_what_to_do_and_alerts_the_operators(
    api: AdminApi,
) -> None:
    await connected(api, language="en")
    reason = "anomaly: 4000 messages in 5 minutes, 40x the baseline"
    await ok(api, "POST", f"/v1/connections/{CONN}/suspend", {"reason": reason})
    to_org, alert = api.outbox.sent[-2:]
    notice = read_notice(to_org.data)
    assert notice.parts == [notice.text.strip()]  # English only: no second part
    assert notice.subject == "Mail system of akimat.gov.kz suspended at UGEM"
    assert f"Reason and evidence: {reason}" in notice.text
    assert "What to do:" in notice.text and "451 4.7.1" in notice.text
    assert alert.rcpts == (OPERATORS,)
    alerted = read_notice(alert.data)
    assert alerted.subject == "[UGEM] akimat.gov.kz suspended by api:admin-token"
    assert "Contacts notified: aliya@akimat.gov.kz, it@akimat.gov.kz" in alerted.text

    await ok(api, "POST", f"/v1/connections/{CONN}/resume", {"reason": "fixed"})
    [lifted] = last(api)
    assert lifted.subject == "Suspension of akimat.gov.kz at UGEM lifted"
    assert "Note: fixed" in lifted.text


async def test_a_failing_outbox_does_not_undo_the_decision(
    api: AdminApi, caplog: pytest.LogCaptureFixture
) -> None:
    await connected(api)
    api.outbox.fail = True
    with caplog.at_level(logging.ERROR, logger="ugem.core.services.notices"):
        answer = await api.call("POST", f"/v1/connections/{CONN}/suspend", body={"reason": "x"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "suspended"
    failed = [r for r in caplog.records if r.getMessage() == "notice_failed"]
    assert len(failed) == 2  # the organisation's notice and the operators' alert
    log = (await api.call("GET", f"/v1/audit?target={CONN}&action=notice.failed")).json()["items"]
    assert [(e["actor"], e["reason"], e["details"]) for e in log] == [
        ("api:admin-token", "spool full (test)", {"notice": "alert-suspended"}),
        ("api:admin-token", "spool full (test)", {"notice": "suspended"}),
    ]


async def test_a_connection_without_contacts_is_audited_as_not_notified(api: AdminApi) -> None:
    await connected(api)
    await ok(api, "PATCH", f"/v1/connections/{CONN}", {"contacts": []})
    await ok(api, "POST", f"/v1/connections/{CONN}/disconnect", {"reason": "status changed"})
    failed = await api.call("GET", f"/v1/audit?target={CONN}&action=notice.failed")
    [entry] = failed.json()["items"]
    assert "no e-mail address" in entry["reason"]


async def test_an_operators_template_replaces_the_shipped_one(tmp_path: Path) -> None:
    (tmp_path / "resumed.en.txt").write_text(
        "Subject: $domain is back\n\nHello $org_name, resumed: $reason.\n", encoding="utf-8"
    )
    templates = Templates(tmp_path)
    templates.check()
    to = Addressee(
        "x.kz", "Org", Language.EN, (Contact("A B", "a@x.kz"),), "x.kz", ("x.kz",), ("1.2.3.4",)
    )
    text = templates.render(NoticeKind.RESUMED, to.language, {"domain": "x.kz"} | _values())
    assert (text.subject, text.body) == ("x.kz is back", "Hello Org, resumed: fixed.\n")
    shipped = templates.render(NoticeKind.RESUMED, Language.RU, {"domain": "x.kz"} | _values())
    assert shipped.subject.startswith("Приостановка работы x.kz")


def _values() -> dict[str, str]:
    names = ("org_name", "domains", "servers", "date", "reason", "postmaster", "gateway")
    return {n: {"org_name": "Org", "reason": "fixed"}.get(n, "-") for n in names}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Subject: $domain\n\nHello $nobody\n", "bad placeholder 'nobody'"),
        ("no subject line\n", "expected 'Subject: ...'"),
    ],
)
def test_a_broken_template_is_found_at_check_naming_the_file(
    tmp_path: Path, text: str, problem: str
) -> None:
    (tmp_path / "suspended.kk.txt").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        Templates(tmp_path).check()
    assert "suspended.kk.txt" in str(caught.value) and problem in str(caught.value)


def test_every_shipped_template_renders_and_names_no_unknown_value() -> None:
    Templates().check()
