"""`ugem connection ...` driven in-process through `ugem.cli.main`, as an operator types it.

Each test has its own config file whose data dir is under tmp_path, so the
SQLite store the CLI writes is a fresh file; output is read with capsys.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest

from tests.support.cli import Ugem, audit_log, operator, usage_error
from ugem.core.clock import FakeClock
from ugem.core.model import ConnState
from ugem.core.registry import Registry
from ugem.core.store.sqlite import SqliteStore

MINFIN = [
    "connection", "add", "minfin.gov.kz", "--org", "Қаржы министрлігі", "--kind", "state-body",
    "--domain", "mail.minfin.gov.kz", "минфин.қаз", "--server", "10.0.0.1", "2001:db8::/48",
    "--contact", "Әлия Сәрсенбаева <aliya@minfin.gov.kz>", "--phone", "+7 7172 74-00-00",
    "--contact", "Bob Smith <bob@minfin.gov.kz>", "--phone", "+7 7172 74-00-01",
    "--mobile", "+7 701 000 00 00",
    "--lang", "kk",
]  # fmt: skip
EDU = ["connection", "add", "edu.gov.kz", "--org", "Edu", "--kind", "quasi-public",
       "--server", "192.0.2.5", "--contact", "Edu IT <it@edu.gov.kz>"]  # fmt: skip


@pytest.fixture
def ugem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Ugem:
    return operator(tmp_path, capsys, monkeypatch)


def _audit(db: Path, target: str) -> list[tuple[str, str, str]]:
    return [(e.actor, e.action, e.reason) for e in audit_log(db, target)]


def test_add_then_list_as_a_table(ugem: Ugem) -> None:
    assert "added connection minfin.gov.kz" in ugem.ok(*MINFIN)
    ugem.ok(*EDU)
    header, *rows = ugem.ok("connection", "list").splitlines()
    assert header.split() == ["ID", "ORG", "KIND", "STATE", "DOMAINS", "SERVERS"]
    assert rows[0].split() == ["edu.gov.kz", "Edu", "quasi-public", "connected", "edu.gov.kz",
                               "192.0.2.5"]  # fmt: skip
    assert rows[1].split()[:1] == ["minfin.gov.kz"]
    assert "xn--h1aakfb4b.xn--80ao21a" in rows[1]
    assert "10.0.0.1,2001:db8::/48" in rows[1]


def test_list_json_and_state_filter(ugem: Ugem) -> None:
    ugem.ok(*MINFIN)
    ugem.ok(*EDU)
    ugem.ok("connection", "suspend", "edu.gov.kz", "--reason", "spam wave")
    listed = json.loads(ugem.ok("connection", "list", "--json"))
    assert [c["id"] for c in listed] == ["edu.gov.kz", "minfin.gov.kz"]
    suspended = json.loads(ugem.ok("connection", "list", "--state", "suspended", "--json"))
    assert [(c["id"], c["state"]) for c in suspended] == [("edu.gov.kz", "suspended")]
    assert json.loads(ugem.ok("connection", "list", "--state", "disconnected", "--json")) == []


def test_show_json_holds_every_argument(ugem: Ugem) -> None:
    ugem.ok(*MINFIN)
    shown = json.loads(ugem.ok("connection", "show", "MINFIN.gov.kz.", "--json"))
    assert shown["org_name"] == "Қаржы министрлігі"
    assert shown["kind"] == "state-body"
    assert shown["language"] == "kk"
    assert shown["state"] == "connected"
    assert shown["domains"] == ["minfin.gov.kz", "mail.minfin.gov.kz", "xn--h1aakfb4b.xn--80ao21a"]
    assert shown["servers"] == ["10.0.0.1/32", "2001:db8::/48"]
    assert shown["contacts"] == [  # the nth --phone/--mobile belongs to the nth --contact
        {"full_name": "Әлия Сәрсенбаева", "email": "aliya@minfin.gov.kz",
         "office_phone": "+7 7172 74-00-00", "mobile": "+7 701 000 00 00"},
        {"full_name": "Bob Smith", "email": "bob@minfin.gov.kz",
         "office_phone": "+7 7172 74-00-01", "mobile": ""},
    ]  # fmt: skip
    created = dt.datetime.fromisoformat(shown["created_at"])  # RFC 3339, in Almaty
    assert created.utcoffset() == dt.timedelta(hours=5) and created.timestamp() > 0


def test_show_for_people(ugem: Ugem) -> None:
    ugem.ok(*MINFIN)
    ugem.ok("connection", "suspend", "minfin.gov.kz", "--reason", "spam wave")
    out = ugem.ok("connection", "show", "minfin.gov.kz")
    assert out.splitlines()[0] == "minfin.gov.kz"
    for text in ("Қаржы министрлігі", "suspended since", "spam wave",
                 "xn--h1aakfb4b.xn--80ao21a (минфин.қаз)", "10.0.0.1, 2001:db8::/48",
                 "Әлия Сәрсенбаева <aliya@minfin.gov.kz>, office +7 7172 74-00-00, mobile +7 701",
                 "cli:operator1  connection.suspend  spam wave",
                 "cli:operator1  connection.add"):  # fmt: skip
        assert text in out


def test_suspend_resume_disconnect_are_audited(ugem: Ugem) -> None:
    ugem.ok(*EDU)
    suspended = ugem.ok("connection", "suspend", "edu.gov.kz", "--reason", "spam")
    assert suspended.splitlines()[0] == "connection edu.gov.kz is suspended: spam"
    resumed = ugem.ok("connection", "resume", "edu.gov.kz")
    assert resumed.splitlines()[0] == "connection edu.gov.kz is connected"
    ugem.ok("connection", "disconnect", "edu.gov.kz", "--reason", "contract ended")
    shown = json.loads(ugem.ok("connection", "show", "edu.gov.kz", "--json"))
    assert (shown["state"], shown["state_reason"]) == ("disconnected", "contract ended")
    assert _audit(ugem.db, "edu.gov.kz") == [
        ("cli:operator1", "connection.disconnect", "contract ended"),
        ("cli:operator1", "connection.resume", ""),
        ("cli:operator1", "connection.suspend", "spam"),
        ("cli:operator1", "connection.add", ""),
    ]


def test_a_running_registry_sees_the_cli_change_on_its_next_sync(ugem: Ugem) -> None:
    ugem.ok(*EDU)
    store = SqliteStore(ugem.db)  # the node's own store object on the same file
    registry = Registry(store, FakeClock())
    try:
        asyncio.run(registry.sync())
        assert registry.by_address("192.0.2.5") is not None
        ugem.ok("connection", "suspend", "edu.gov.kz", "--reason", "spam")
        asyncio.run(registry.sync())
        conn = registry.by_address("192.0.2.5")
        assert conn is not None and conn.state == ConnState.SUSPENDED
    finally:
        asyncio.run(store.close())


@pytest.mark.parametrize(
    ("change", "option"),
    [
        (["--kind", "ministry"], "--kind"),
        (["--server", "10.0.0.300"], "--server"),
        (["--server", "mail.example.org"], "--server"),
        (["--domain", "bad_domain!.kz"], "--domain"),
        (["--contact", "Just A Name"], "--contact"),
        (["--contact", "Name <not-an-address>"], "--contact"),
        (["--contact", "<a@b.kz>"], "--contact"),
        (["--contact", "A B <a@b.kz>", "--phone", "1", "--phone", "2"], "--phone"),
        (["--contact", "A B <a@b.kz>", "--mobile", "call me"], "--mobile"),
        (["--lang", "de"], "--lang"),
        (["--org", "  "], "--org"),
    ],
)
def test_bad_add_argument_is_one_line_naming_it(ugem: Ugem, change: list[str], option: str) -> None:
    base = ["connection", "add", "x.gov.kz", "--org", "X", "--kind", "state-body",
            "--server", "192.0.2.9"]  # fmt: skip
    result = ugem(*base, *change)
    usage_error(result, option)
    assert ugem.db.exists() is False or ugem("connection", "list", "--json").out == "[]\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["connection", "add", "not a domain", "--org", "X", "--kind", "state-body",
         "--server", "192.0.2.9"],
        ["connection", "show", "bad_name.kz"],
        ["connection", "list", "--state", "paused"],
        ["connection", "suspend", "x.gov.kz", "--reason", " "],
    ],
)  # fmt: skip
def test_bad_argument_of_other_commands(ugem: Ugem, argv: list[str]) -> None:
    result = ugem(*argv)
    assert result.code == 2
    assert result.err.startswith("ugem: error: ")
    assert any(name in result.err for name in ("ID:", "--state:", "--reason:"))


def test_missing_required_option_exits_2_naming_it(ugem: Ugem) -> None:
    with pytest.raises(SystemExit) as caught:
        ugem("connection", "add", "x.gov.kz", "--org", "X", "--kind", "state-body")
    assert caught.value.code == 2
    assert "--server" in ugem.capsys.readouterr().err


@pytest.mark.parametrize("verb", ["show", "resume", "disconnect"])
def test_unknown_id_exits_1(ugem: Ugem, verb: str) -> None:
    result = ugem("connection", verb, "nobody.gov.kz")
    assert result.code == 1
    assert "no connection 'nobody.gov.kz'" in result.err


def test_taken_id_or_domain_exits_1_naming_the_owner(ugem: Ugem) -> None:
    ugem.ok(*EDU)
    again = ugem(*EDU)
    assert again.code == 1 and "'edu.gov.kz' exists" in again.err
    thief = ugem("connection", "add", "x.gov.kz", "--org", "X", "--kind", "state-body",
                 "--server", "192.0.2.9", "--domain", "EDU.gov.kz")  # fmt: skip
    assert thief.code == 1
    assert "domain 'edu.gov.kz' belongs to connection 'edu.gov.kz'" in thief.err


def test_config_before_after_and_from_the_environment(
    ugem: Ugem, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ugem(*EDU, "--config", str(ugem.config), config=False).code == 0  # after
    assert ugem.db.exists()  # the store is the one in the config's data dir
    before = ugem("--config", str(ugem.config), "connection", "list", "--json", config=False)
    assert [c["id"] for c in json.loads(before.out)] == ["edu.gov.kz"]
    monkeypatch.setenv("UGEM_CONFIG", str(ugem.config))
    from_env = ugem("connection", "show", "edu.gov.kz", "--json", config=False)
    assert json.loads(from_env.out)["id"] == "edu.gov.kz"


def test_unreadable_config_exits_2_naming_it(ugem: Ugem, tmp_path: Path) -> None:
    result = ugem("connection", "list", "--config", str(tmp_path / "missing.toml"), config=False)
    assert result.code == 2
    assert "--config" in result.err and "missing.toml" in result.err
