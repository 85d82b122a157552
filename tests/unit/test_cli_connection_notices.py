"""`ugem connection suspend|resume|disconnect|cancel-disconnect` mail their notices.

The CLI commits each notice into the node's spool file (read back here as a
second process would); a running node's scheduler delivers it (see
tests/integration/test_cli_notice_reaches_the_sink.py). A disconnection may
be scheduled with `--effective-at` (ISO 8601, Almaty time without a zone, or
Unix time) and cancelled with `cancel-disconnect`, as the API's
`effective_at` and `DELETE .../disconnect`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tests.support.cli import Ugem, operator
from tests.support.mail import read_notice
from ugem.core.times import rfc3339
from ugem.core.workdays import ALMATY

DOMAIN = "minfin.gov.kz"
POSTMASTER, NOC = "postmaster@sts.test", "noc@sts.test"
MINFIN = [
    "connection", "add", DOMAIN, "--org", "Қаржы министрлігі", "--kind", "state-body",
    "--server", "192.0.2.10", "--lang", "kk",
    "--contact", "Әлия Сәрсенбаева <aliya@minfin.gov.kz>",
    "--contact", "Bob Smith <bob@minfin.gov.kz>",
]  # fmt: skip
DAY = 86400.0


@pytest.fixture
def ugem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Ugem:
    extra = f'[admin]\npostmaster = "{POSTMASTER}"\noperators_address = "{NOC}"\n'
    cli = operator(tmp_path, capsys, monkeypatch, extra)
    cli.ok(*MINFIN)
    return cli


def test_suspend_queues_the_notice_to_the_contacts_in_their_language(ugem: Ugem) -> None:
    out = ugem.ok("connection", "suspend", DOMAIN, "--reason", "4000 messages in 5 minutes")
    spooled = {tuple(m.rcpts): m for m in ugem.spooled()}
    contacts = ("aliya@minfin.gov.kz", "bob@minfin.gov.kz")
    assert set(spooled) == {contacts, (NOC,)}  # the organisation's, and the operators' alert
    notice = spooled[contacts]
    assert (notice.sender, notice.state, notice.connection) == (POSTMASTER, "active", "")
    assert f"notice {notice.id} queued to {', '.join(contacts)}" in out.splitlines()
    assert notice.data is not None
    kazakh, english = read_notice(notice.data).parts
    assert kazakh.startswith("Құрметті әріптестер!") and english.startswith("Dear colleagues,")
    assert "Себебі мен белгілері: 4000 messages in 5 minutes" in kazakh  # noqa: RUF001
    ugem.ok("connection", "resume", DOMAIN, "--reason", "fixed")
    assert len(ugem.spooled()) == 3


def test_a_notice_that_cannot_be_queued_is_a_warning_and_the_change_stands(ugem: Ugem) -> None:
    ugem.ok("connection", "add", "edu.gov.kz", "--org", "Edu", "--kind", "quasi-public",
            "--server", "192.0.2.5")  # fmt: skip
    result = ugem("connection", "suspend", "edu.gov.kz", "--reason", "spam")
    assert (result.code, result.out.splitlines()[0]) == (
        0,
        "connection edu.gov.kz is suspended: spam",
    )
    assert result.err == (
        "ugem: warning: not queued: suspended notice to edu.gov.kz: "
        "contacts: none; no e-mail address to send the notice to\n"
    )
    assert [m.rcpts for m in ugem.spooled()] == [[NOC]]  # the operators' alert went


def test_effective_at_schedules_and_cancel_disconnect_removes_it(ugem: Ugem) -> None:
    tomorrow = dt.datetime.now(ALMATY).replace(second=0, microsecond=0, tzinfo=None) + dt.timedelta(
        days=1
    )
    out = ugem.ok("connection", "disconnect", DOMAIN, "--reason", "status changed",
                  "--effective-at", tomorrow.isoformat())  # fmt: skip
    at = tomorrow.replace(tzinfo=ALMATY).isoformat()  # no zone: Almaty time
    assert out.splitlines()[0] == (
        f"connection {DOMAIN} is connected; disconnection scheduled for {at}"
    )
    shown = json.loads(ugem.ok("connection", "show", DOMAIN, "--json"))
    assert shown["state"] == "connected"
    assert shown["disconnect"]["at"] == at and shown["disconnect"]["by"] == "cli:operator1"
    assert "disconnect at" in ugem.ok("connection", "show", DOMAIN)
    [scheduled] = ugem.spooled()
    assert scheduled.data is not None and "disconnected" in read_notice(scheduled.data).parts[1]
    cancelled = ugem.ok("connection", "cancel-disconnect", DOMAIN, "--reason", "agreed")
    assert cancelled.startswith(f"connection {DOMAIN}: scheduled disconnection cancelled")
    assert json.loads(ugem.ok("connection", "show", DOMAIN, "--json"))["disconnect"] is None
    again = ugem("connection", "cancel-disconnect", DOMAIN)
    assert (again.code, again.err) == (1, f"ugem: connection {DOMAIN!r} has no disconnection "
                                          "scheduled\n")  # fmt: skip


@pytest.mark.parametrize(("offset", "state"), [(DAY, "connected"), (-60.0, "disconnected")])
def test_effective_at_as_unix_time_in_the_future_or_past(
    ugem: Ugem, offset: float, state: str
) -> None:
    at = dt.datetime.now(dt.UTC).timestamp() + offset
    ugem.ok("connection", "disconnect", DOMAIN, "--effective-at", str(at))
    shown = json.loads(ugem.ok("connection", "show", DOMAIN, "--json"))
    assert shown["state"] == state
    plan = shown["disconnect"]
    assert (plan is None) == (offset < 0)
    assert plan is None or (plan["at"], plan["by"]) == (rfc3339(at), "cli:operator1")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tomorrow", "--effective-at: 'tomorrow' is not a time"),
        ("nan", "--effective-at: 'nan' is not a time"),
        ("2099-01-01T00:00+05:00", "--effective-at: more than five years ahead"),
    ],
)
def test_bad_effective_at_is_one_line_naming_it(ugem: Ugem, value: str, message: str) -> None:
    result = ugem("connection", "disconnect", DOMAIN, "--effective-at", value)
    assert result.code == 2
    assert result.err.startswith(f"ugem: error: {message}") and result.err.count("\n") == 1
    assert json.loads(ugem.ok("connection", "show", DOMAIN, "--json"))["disconnect"] is None
