"""`ugem reputation check [--json]` against a private dnsmasq serving test blocklists.

The command looks every `[node] public_addresses` address up on every
`[reputation] dnsbl_zones` zone through `[delivery] dns_servers` and prints a
table (or JSON in `/v1/reputation`'s form). It exits 0 when every address is
clear everywhere, 1 when one is listed (whatever else), 3 when nothing is
listed but a list gave no verdict (an error code, or no answer in time), and
2 naming the key when there is nothing to check or a zone is no domain name.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from relay.reputation.dnsbl import query_name
from tests.support.cli import Ugem, operator
from ugem.commands.config import toml_value

V4, V6 = "203.0.113.9", "2001:db8::25"
LISTING, CLEAN, PICKY, SILENT = "bl.listing.test", "clean.test", "picky.test", "silent.test"
REASON = f"Listed in bl.listing.test: see https://listing.test/lookup?ip={V4}"


@pytest.fixture
def dns(dns_server: Any, silent_dns: Any) -> Any:
    return dns_server(
        a={query_name(V4, LISTING): ["127.0.0.2"], query_name(V4, PICKY): ["127.255.255.254"]},
        txt={query_name(V4, LISTING): REASON},
        forward={SILENT: silent_dns.address},
    )


def cli(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    dns: Any,
    zones: list[str],
    addresses: list[str] | None = None,
) -> Ugem:
    extra = (
        f"public_addresses = {toml_value([V4, V6] if addresses is None else addresses)}\n"
        f"[delivery]\ndns_servers = {toml_value([dns.address])}\n"
        f"[reputation]\ndnsbl_zones = {toml_value(zones)}\ntimeout = 0.5\n"
    )
    return operator(tmp_path, capsys, monkeypatch, extra)


def test_a_listed_address_is_shown_with_its_reason_and_exits_1(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    dns: Any,
) -> None:
    ugem = cli(tmp_path, capsys, monkeypatch, dns, [LISTING, CLEAN, PICKY, SILENT])
    result = ugem("reputation", "check")
    assert (result.code, result.err) == (1, "")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # the table says it
    header, *rows = result.out.splitlines()
    assert header.split() == ["ADDRESS", "ZONE", "STATE", "SINCE", "CODES", "REASON"]
    assert [row.split()[:3] for row in rows] == [
        [V4, LISTING, "LISTED"], [V4, CLEAN, "CLEAR"], [V4, PICKY, "UNUSABLE"],
        [V4, SILENT, "UNKNOWN"], [V6, LISTING, "CLEAR"], [V6, CLEAN, "CLEAR"],
        [V6, PICKY, "CLEAR"], [V6, SILENT, "UNKNOWN"],
    ]  # fmt: skip
    codes, reason = rows[0].split()[5], rows[0].split(maxsplit=6)[6]
    assert (codes, reason) == ("127.0.0.2", REASON)
    assert rows[1].split()[5:] == ["-"]
    assert rows[2].split()[5:8] == ["127.255.255.254", "127.255.255.254:", "query"]
    assert rows[2].endswith("...")  # the reason cut to its column
    assert rows[3].endswith(f"A {query_name(V4, SILENT)}: timed out")


def test_json_is_the_reports_form(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, dns: Any
) -> None:
    ugem = cli(tmp_path, capsys, monkeypatch, dns, [LISTING, PICKY], [V4])
    result = ugem("reputation", "check", "--json")
    assert result.code == 1
    report = json.loads(result.out)
    checked = report.pop("last_check")
    listed, picky = report.pop("standings")
    assert report == {
        "watching": False, "interval": 3600.0, "addresses": [V4], "zones": [LISTING, PICKY],
        "listed": True,
    }  # fmt: skip
    assert listed == {
        "address": V4, "zone": LISTING, "state": "listed", "since": checked,
        "checked_at": checked, "reason": REASON, "codes": ["127.0.0.2"],
    }  # fmt: skip
    assert (picky["state"], picky["codes"]) == ("unusable", ["127.255.255.254"])


@pytest.mark.parametrize(
    ("zones", "code"),
    [([CLEAN], 0), ([CLEAN, PICKY], 3), ([CLEAN, SILENT], 3), ([SILENT, LISTING], 1)],
)
def test_the_exit_code_says_what_was_found(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    dns: Any,
    zones: list[str],
    code: int,
) -> None:
    result = cli(tmp_path, capsys, monkeypatch, dns, zones)("reputation", "check")
    assert (result.code, result.err) == (code, "")


@pytest.mark.parametrize(
    ("zones", "addresses", "named"),
    [
        ([CLEAN], [], "node.public_addresses"),
        ([], [V4], "reputation.dnsbl_zones"),
        (["not a zone"], [V4], "reputation.dnsbl_zones"),
        ([CLEAN], ["gw.example.kz"], "node.public_addresses"),
    ],
)
def test_nothing_to_check_or_a_bad_value_exits_2_naming_the_key(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    dns: Any,
    zones: list[str],
    addresses: list[str],
    named: str,
) -> None:
    result = cli(tmp_path, capsys, monkeypatch, dns, zones, addresses)("reputation", "check")
    assert result.code == 2 and result.out == ""
    assert result.err.startswith(f"ugem: error: config key {named}: ")
    assert result.err.count("\n") == 1
    assert "query[" not in dns.log_text().partition("ready.invalid")[2]  # nothing asked
