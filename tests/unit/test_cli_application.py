"""`ugem application ...` driven in-process through `ugem.cli.main`, as an operator types it.

Each test has its own config whose data dir is under tmp_path (a fresh store
and spool) and whose resolver is a closed loopback port, so the automatic DNS
readiness checks (mx, spf, dkim, dmarc) fail at once and the operator's
findings override them. A decision's
notice is read back from the node's spool file, where the CLI commits it.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tests.support.cli import Ugem, operator, usage_error
from tests.support.mail import read_notice
from ugem.core.workdays import ALMATY

DOMAIN = "akimat.gov.kz"
POSTMASTER = "postmaster@sts.test"
FORM = [
    "application", "receive", "--number", "0417", "--received-at", "2025-10-13T10:00",
    "--channel", "letter", "--domain", DOMAIN, "--domain-owner", "Akimat",
    "--server", "192.0.2.7", "2001:db8::7", "--org", "Қала әкімдігі", "--kind", "local-government",
    "--contact", "Сәрсенбаева Әлия Нұрланқызы <it@akimat.gov.kz>", "--phone", "+7 7172 00-00-00",
    "--mobile", "+7 701 000 00 00", "--lang", "kk",
]  # fmt: skip
OVERRIDES = [
    "--name", "mx", "--pass", "--note", "mx.akimat.gov.kz (operator)",
    "--name", "spf", "--pass", "--name", "dkim", "--pass", "--name", "dmarc", "--pass",
    "--name", "routable", "--note", "over the STS channel", "--pass",
]  # fmt: skip


@pytest.fixture
def ugem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Ugem:
    extra = (
        f'[admin]\npostmaster = "{POSTMASTER}"\n'
        '[delivery]\ndns_servers = ["127.0.0.1:9"]\ndns_timeout = 0.2\n'
    )
    return operator(tmp_path, capsys, monkeypatch, extra)


def receive(ugem: Ugem, *changes: str) -> str:
    out = ugem.ok(*FORM, *changes)
    assert out.startswith("received application ")
    return out.split()[2]


def show(ugem: Ugem, app_id: str) -> dict[str, object]:
    shown: dict[str, object] = json.loads(ugem.ok("application", "show", app_id, "--json"))
    return shown


def test_receive_records_every_field_of_the_form_and_the_deadline(ugem: Ugem) -> None:
    out = ugem.ok(*FORM)
    app_id = out.split()[2]
    assert out.endswith(f"(No. 0417) for {DOMAIN}: decision due 2025-10-20\n")  # 5 working days
    app = show(ugem, app_id)
    received = "2025-10-13T10:00:00+05:00"  # given without a zone: Almaty time
    assert {k: app[k] for k in ("number", "received_at", "channel", "domain", "domain_owner")} == {
        "number": "0417", "received_at": received, "channel": "letter", "domain": DOMAIN,
        "domain_owner": "Akimat",
    }  # fmt: skip
    assert app["servers"] == ["192.0.2.7/32", "2001:db8::7/128"]
    assert (app["org_name"], app["kind"], app["language"]) == (
        "Қала әкімдігі", "local-government", "kk",
    )  # fmt: skip
    assert app["contacts"] == [
        {"full_name": "Сәрсенбаева Әлия Нұрланқызы", "email": "it@akimat.gov.kz",
         "office_phone": "+7 7172 00-00-00", "mobile": "+7 701 000 00 00"},
    ]  # fmt: skip
    assert (app["state"], app["recorded_by"], app["overdue"]) == ("pending", "cli:operator1", True)
    people = ugem.ok("application", "show", app_id)
    assert "2025-10-20  OVERDUE" in people and f"received      {received} by" in people


def test_list_filters_by_state_and_overdue(ugem: Ugem) -> None:
    late = receive(ugem)
    fresh = receive(ugem, "--domain", "maslikhat.gov.kz", "--received-at", str(_now()))
    listed = json.loads(ugem.ok("application", "list", "--json"))
    assert {a["id"] for a in listed} == {late, fresh}
    overdue = json.loads(
        ugem.ok("application", "list", "--state", "pending", "--overdue", "--json")
    )
    assert [a["id"] for a in overdue] == [late]
    assert json.loads(ugem.ok("application", "list", "--state", "rejected", "--json")) == []
    header, *rows = ugem.ok("application", "list", "--overdue").splitlines()
    assert header.split() == [
        "ID",
        "NUMBER",
        "DOMAIN",
        "ORG",
        "STATE",
        "RECEIVED",
        "DUE",
        "OVERDUE",
    ]
    assert len(rows) == 1 and rows[0].split()[0] == late and rows[0].endswith("yes")


def test_check_runs_the_automatic_checks_then_records_the_operators_findings(ugem: Ugem) -> None:
    app_id = receive(ugem)
    auto = json.loads(ugem.ok("application", "check", app_id, "--json"))
    verdicts = {c["name"]: (c["ok"], c["by"]) for c in auto["checks"]}
    assert verdicts == {
        "eligible": (True, "auto"), "routable": (False, "auto"), "servers-free": (True, "auto"),
        "domain-free": (True, "auto"), "mx": (False, "auto"), "spf": (False, "auto"),
        "dkim": (False, "auto"), "dmarc": (False, "auto"),
    }  # fmt: skip
    people = ugem.ok("application", "show", app_id)
    assert "these checks must pass: routable, mx, spf, dkim, dmarc" in people
    checked = json.loads(ugem.ok("application", "check", app_id, *OVERRIDES, "--json"))
    found = {c["name"]: c for c in checked["checks"]}
    assert all(c["ok"] for c in checked["checks"])
    assert found["mx"] == {"name": "mx", "ok": True, "note": "mx.akimat.gov.kz (operator)",
                           "by": "cli:operator1"}  # fmt: skip
    assert found["routable"]["note"] == "over the STS channel"


def test_connect_creates_the_connection_and_queues_the_notice_in_its_language(ugem: Ugem) -> None:
    app_id = receive(ugem)
    refused = ugem("application", "decide", app_id, "connect")
    assert refused.code == 1 and "checks failed: none were run" in refused.err
    ugem.ok("application", "check", app_id, *OVERRIDES)
    out = ugem.ok("application", "decide", app_id, "connect").splitlines()
    assert out[0] == f"application {app_id} (No. 0417) is connected: connection {DOMAIN} added"
    [queued] = ugem.spooled()
    assert out[1] == f"notice {queued.id} queued to it@akimat.gov.kz"
    assert (queued.sender, queued.rcpts, queued.state) == (
        POSTMASTER,
        ["it@akimat.gov.kz"],
        "active",
    )
    assert queued.data is not None
    kazakh, english = read_notice(queued.data).parts
    assert "№ 0417 өтінім" in kazakh and "Measures taken" in english
    conn = json.loads(ugem.ok("connection", "show", DOMAIN, "--json"))
    assert (conn["state"], conn["extra"]["application"]) == ("connected", app_id)
    again = ugem("application", "check", app_id)
    assert again.code == 1 and "it was connected on" in again.err


def test_reject_needs_a_reason_and_starts_the_thirty_days(ugem: Ugem) -> None:
    app_id = receive(ugem, "--lang", "ru")
    bare = ugem("application", "decide", app_id, "reject")
    assert bare.code == 2 and bare.err.startswith("ugem: error: --reason: empty")
    out = ugem.ok("application", "decide", app_id, "reject", "--reason", "нет MX", "нет канала")
    assert out.splitlines()[0].endswith("is rejected: нет MX; нет канала")
    [queued] = ugem.spooled()
    assert queued.data is not None
    russian = read_notice(queued.data).parts[0]
    assert "  - нет MX\n  - нет канала" in russian
    early = ugem(*FORM, "--received-at", str(_now()))
    first = (dt.datetime.now(ALMATY).date() + dt.timedelta(days=31)).isoformat()
    assert early.code == 1 and f"a new application is accepted from {first}" in early.err


@pytest.mark.parametrize(
    ("change", "option"),
    [
        (["--kind", "ministry"], "--kind"),
        (["--server", "10.0.0.300"], "--server"),
        (["--domain", "bad_domain!.kz"], "--domain"),
        (["--received-at", "yesterday"], "--received-at"),
        (["--channel", "fax"], "--channel"),
        (["--lang", "de"], "--lang"),
        (["--contact", "Just A Name"], "--contact"),
        (["--org", " "], "--org"),
        (["--number", " "], "--number"),
    ],
)
def test_bad_receive_argument_is_one_line_naming_it(
    ugem: Ugem, change: list[str], option: str
) -> None:
    result = ugem(*FORM, *change)
    usage_error(result, option)
    assert json.loads(ugem.ok("application", "list", "--json")) == []


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["check", "ID", "--pass"], "--pass: no --name before it"),
        (["check", "ID", "--name", "mx"], "--name mx: neither --pass nor --fail"),
        (["check", "ID", "--name", "mx", "--pass", "--fail"], "--fail: mx has --pass"),
        (["decide", "ID", "maybe"], "DECISION: 'maybe' is not one of connect, reject"),
        (["list", "--state", "late"], "--state: 'late' is not one of pending"),
    ],
)
def test_bad_argument_of_other_commands_names_it(ugem: Ugem, argv: list[str], option: str) -> None:
    app_id = receive(ugem)
    result = ugem("application", *(app_id if a == "ID" else a for a in argv))
    assert result.code == 2
    assert result.err.startswith(f"ugem: error: {option}")
    assert ugem("application", "show", app_id, "--json").code == 0


@pytest.mark.parametrize("verb", [["show"], ["check"], ["decide", "reject", "--reason", "x"]])
def test_unknown_id_exits_1(ugem: Ugem, verb: list[str]) -> None:
    result = ugem("application", verb[0], "20250101-000000", *verb[1:])
    assert (result.code, result.err) == (1, "ugem: no application '20250101-000000'\n")


def _now() -> float:
    return dt.datetime.now(ALMATY).timestamp()
