"""Haraka as the comparison's second peer, without Haraka: the config files a private
instance gets (a loopback listener, the relay ACL, the force route to the sink, the
outbound queue in its directory, no TLS, no DNS-using plugin), the settings given on the
command line, the install's checks, and Haraka's column, note and ratio in the reports.

The run through a real Haraka: tests/integration/test_loadtest_haraka.py.
"""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import pytest

from loadtest import haraka
from loadtest.__main__ import main
from loadtest.commands import _only
from loadtest.compare import (
    CompareOptions,
    Comparison,
    Measurement,
    parse_only,
    render_json,
    render_text,
)
from loadtest.errors import TargetError, UsageError
from loadtest.haraka import HarakaInstance
from loadtest.report import Report, Tally

SHIPPED_CONNECTION_INI = "[message]\nhelo=Haraka is at your service.\n"


@pytest.fixture
def prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A prefix holding what write() reads of an install: Haraka's connection.ini."""
    where = tmp_path / "prefix"
    config = where / "node_modules" / "Haraka" / "config"
    config.mkdir(parents=True)
    (config / "connection.ini").write_text(SHIPPED_CONNECTION_INI)
    monkeypatch.setenv(haraka.PREFIX_ENV, str(where))
    return where


def _ini(path: Path) -> configparser.ConfigParser:
    """Haraka's ini as configparser reads it: the keys before any section are in [main]."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string("[main]\n" + path.read_text())
    return parser


def _written(
    tmp_path: Path, overrides: dict[str, dict[str, str]] | None = None, nodes: int = 0
) -> HarakaInstance:
    base = tmp_path / f"haraka-{nodes}"
    instance = HarakaInstance(base, 40125, "example.org", ("127.0.0.1", 40126), overrides, nodes)
    instance.write()
    return instance


def test_a_loopback_relay_to_the_sink_through_the_outbound_queue(
    tmp_path: Path, prefix: Path
) -> None:
    instance = _written(tmp_path)
    conf = instance.conf
    smtp = _ini(conf / "smtp.ini")
    assert dict(smtp["main"]) == {"listen": "127.0.0.1:40125", "nodes": "0"}
    assert (conf / "plugins").read_text().split() == ["rdns_off", "relay"]
    assert _ini(conf / "relay.ini")["relay"]["acl"] == "true"
    assert _ini(conf / "relay.ini")["relay"]["force_routing"] == "true"
    assert (conf / "relay_acl_allow").read_text() == "127.0.0.0/8\n"
    route = json.loads(_ini(conf / "relay_dest_domains.ini")["domains"]["example.org"])
    assert route == {"action": "continue", "nexthop": "127.0.0.1:40126"}
    outbound = _ini(conf / "outbound.ini")["main"]
    assert (outbound["enable_tls"], outbound["local_mx_ok"]) == ("false", "true")
    assert outbound["concurrency_max"] == "50"
    assert (conf / "queue_dir").read_text().strip() == str(instance.queue)
    assert instance.queue.is_dir() and instance.queue.parent == instance.base
    assert (conf / "connection.ini").read_text() == SHIPPED_CONNECTION_INI
    rdns = (instance.base / "plugins" / "rdns_off.js").read_text()
    assert "hook_lookup_rdns" in rdns and "next(OK, connection.remote.ip)" in rdns


def test_no_tls_and_no_plugin_that_asks_dns(tmp_path: Path, prefix: Path) -> None:
    instance = _written(tmp_path)
    plugins = set((instance.conf / "plugins").read_text().split())
    assert not plugins & {"tls", "mail_from.is_resolvable", "dns-list", "fcrdns", "spf", "dkim"}
    assert not (instance.conf / "tls.ini").exists()
    assert set(instance.files()) == {p.name for p in instance.conf.iterdir()} - {"connection.ini"}


def test_settings_given_replace_or_add_keys(tmp_path: Path, prefix: Path) -> None:
    overrides = haraka.parse_overrides(
        ["outbound.ini:concurrency_max=100", "smtp.ini:nodes=2", "log.ini:main.level=info",
         "relay.ini:relay.all=false", "limit.ini:concurrency.max=10"]
    )  # fmt: skip
    instance = _written(tmp_path, overrides=overrides)
    assert _ini(instance.conf / "outbound.ini")["main"]["concurrency_max"] == "100"
    assert _ini(instance.conf / "outbound.ini")["main"]["enable_tls"] == "false"
    assert _ini(instance.conf / "smtp.ini")["main"]["nodes"] == "2"
    assert _ini(instance.conf / "log.ini")["main"]["level"] == "info"
    assert dict(_ini(instance.conf / "relay.ini")["relay"]) == {
        "acl": "true", "force_routing": "true", "all": "false",
    }  # fmt: skip
    assert _ini(instance.conf / "limit.ini")["concurrency"]["max"] == "10"
    assert _written(tmp_path, nodes=2).files()["smtp.ini"].endswith("nodes=2\n")


@pytest.mark.parametrize(
    "item", ["nocolon=1", "smtp.ini:nodes", "smtp:nodes=1", "smtp.ini:=1", "connection.ini:a=1"]
)
def test_bad_settings_say_what_is_allowed(item: str) -> None:
    with pytest.raises(UsageError, match=r"bad Haraka setting"):
        haraka.parse_overrides([item])


def test_install_is_checked_and_reused(
    tmp_path: Path, prefix: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert haraka.prefix() == prefix
    assert not haraka.is_installed()  # no package.json, no relay plugin
    package = prefix / "node_modules" / "Haraka" / "package.json"
    package.write_text(json.dumps({"name": "Haraka", "version": "3.3.4"}))
    assert haraka.version() == "3.3.4" and not haraka.is_installed()
    relay = prefix / "node_modules" / "haraka-plugin-relay"
    relay.mkdir()
    (relay / "package.json").write_text("{}")
    assert haraka.is_installed()
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm: an install there is reused all the same
    assert haraka.ensure_installed() == prefix
    package.write_text(json.dumps({"name": "Haraka", "version": "2.8.28"}))
    with pytest.raises(TargetError, match="npm is not"):
        haraka.ensure_installed()


def test_a_missing_install_is_a_target_error(tmp_path: Path, prefix: Path) -> None:
    (prefix / "node_modules" / "Haraka" / "config" / "connection.ini").unlink()
    with pytest.raises(TargetError, match=r"connection\.ini"):
        HarakaInstance(tmp_path / "h", 40125, "example.org", ("127.0.0.1", 40126)).write()


def test_only_takes_a_list_in_the_comparisons_order() -> None:
    assert parse_only("ugem,haraka") == ("haraka", "ugem")
    assert parse_only("haraka, postfix ,ugem") == ("postfix", "haraka", "ugem")
    with pytest.raises(UsageError, match="unknown target exim: of postfix, haraka, ugem"):
        parse_only("exim,ugem")
    with pytest.raises(UsageError, match="no target in ','"):
        parse_only(",")
    assert _only(None, "postfix") == ("postfix", "ugem")  # the default, as before Haraka
    assert _only(None, "haraka") == ("haraka", "ugem")
    assert _only([("ugem",), ("haraka", "postfix")], "postfix") == ("postfix", "haraka", "ugem")
    assert CompareOptions().only == ("postfix", "ugem")


def test_cli_refuses_an_unknown_target(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:  # an argparse error
        main(["compare", "postfix", "--only", "haraka,exim"])
    assert exited.value.code == 2
    assert "unknown target exim" in capsys.readouterr().err


def _measured(name: str, version: str, last_arrival: float, note: str | None = None) -> Measurement:
    tally = Tally()
    for n in range(1000):
        tally.accept(f"{name}-{n}", 2048, 0.01)
    report = Report.of(
        tally, 2.0, target="t", run_id=name, connections=50, per_connection=100,
        size="2048 bytes", rate="as fast as possible", started_at=1000.0, finished_at=1002.0,
    )  # fmt: skip
    sink = {"messages": 1000, "last_arrival": last_arrival, "lost": 0, "duplicates": 0}
    return Measurement(name, version, report, sink, settings={f"{name}.cf": "x = 1\n"}, note=note)


def test_haraka_has_its_column_ratio_note_and_settings() -> None:
    comparison = Comparison(
        CompareOptions(messages=1000, only=("postfix", "haraka", "ugem")),
        [
            _measured("postfix", "Postfix 3.7.11", 1004.0),
            _measured("haraka", "Haraka 3.3.4", 1005.0, haraka.DURABILITY),
            _measured("ugem", "UGEM", 1002.0),
        ],
    )
    text = render_text(comparison)
    header = next(line for line in text.splitlines() if "Haraka 3.3.4" in line)
    columns = ["Postfix", "3.7.11", "Haraka", "3.3.4", "UGEM", "ugem", "/", "postfix"]
    assert header.split() == [*columns, "ugem", "/", "haraka"]
    e2e = next(line for line in text.splitlines() if line.startswith("end to end"))
    assert e2e.split()[-5:] == ["250.0", "200.0", "500.0", "2.00", "2.50"]
    assert f"Haraka 3.3.4: {haraka.DURABILITY}" in text
    assert "fsynced before the 250" in haraka.DURABILITY
    data = json.loads(json.dumps(render_json(comparison)))
    assert data["ratios"]["ugem / haraka"]["e2e"] == pytest.approx(2.5)
    assert data["ratio"]["e2e"] == pytest.approx(2.0)  # gateway / Postfix, as before
    assert data["targets"]["haraka"]["note"] == haraka.DURABILITY
    assert data["targets"]["haraka"]["settings"] == {"haraka.cf": "x = 1\n"}
