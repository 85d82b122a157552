"""`ugem reputation check [--json]` against a private dnsmasq serving test blocklists.

The command looks every `[node] public_addresses` address up on every
`[reputation] dnsbl_zones` zone through `[delivery] dns_servers` and prints a
table (or JSON in `/v1/reputation`'s form). It exits 0 when every address is
clear everywhere, 1 when one is listed (whatever else), 3 when nothing is
listed but a list gave no verdict (an error code, or no answer in time), and
2 naming the key when there is nothing to check or a zone is no domain name.
`ugem reputation complaints` lists the feedback-loop complaints in the store, newest first,
by connection, time and number, as a table with the counts or as `/v1/reputation/complaints`'
JSON; a bad option exits 2 naming it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from relay.reputation.dnsbl import query_name
from tests.support.cli import Ugem, operator, usage_error
from tests.support.connections import plain
from tests.support.feedback import RFC5965_B1, YAHOO_STYLE
from ugem.commands.config import toml_value
from ugem.core.clock import FakeClock
from ugem.core.registry import Registry
from ugem.core.services.complaints import ComplaintService
from ugem.core.store.sqlite import SqliteStore

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
    since, codes, reason = rows[0].split()[3], rows[0].split()[4], rows[0].split(maxsplit=5)[5]
    assert (codes, reason) == ("127.0.0.2", REASON)
    assert since.endswith("+05:00")  # RFC 3339 in Almaty
    assert rows[1].split()[4:] == ["-"]
    assert rows[2].split()[4:7] == ["127.255.255.254", "127.255.255.254:", "query"]
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


# -- ugem reputation complaints --------------------------------------------------------------


def _receive(db: Path, *reports: tuple[bytes, float]) -> None:
    """Complaints received into the SQLite store `db` (agency.gov.kz connected), at times."""

    async def run() -> None:
        store = SqliteStore(db)
        try:
            await store.add(plain("agency.gov.kz", "192.0.2.20"))
            clock = FakeClock()
            registry = Registry(store, clock)
            await registry.sync()
            service = ComplaintService(store, clock, registry)
            for raw, at in reports:
                clock.set(at)
                await service.receive(raw, "203.0.113.7", "fbl@isp.test")
        finally:
            await store.close()

    asyncio.run(run())


def test_complaints_newest_first_with_filters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ugem = operator(tmp_path, capsys, monkeypatch)
    header, summary = ugem.ok("reputation", "complaints").splitlines()
    assert header.split() == [
        "ID", "RECEIVED", "CONNECTION", "BY", "TYPE", "FORMAT", "REPORTER", "QUEUE_ID", "EVIDENCE",
    ]  # fmt: skip
    assert summary == "0 kept of 0 received (0 dropped: the newest 10000 are kept)"
    start = 1_799_740_800.0  # 2027-01-12 08:00:00Z
    _receive(ugem.db, (YAHOO_STYLE, start), (RFC5965_B1, start + 3600))
    _, untraced, traced, summary = ugem.ok("reputation", "complaints").splitlines()
    assert untraced.split()[:6] == ["2", "2027-01-12T14:00:00+05:00", "-", "none", "abuse", "arf"]
    assert traced.split()[:6] == [
        "1",
        "2027-01-12T13:00:00+05:00",
        "agency.gov.kz",
        "dkim",
        "abuse",
        "arf",
    ]
    assert traced.endswith("DKIM-Signature d=agency.gov.kz")
    assert summary == "2 kept of 2 received (0 dropped: the newest 10000 are kept)"

    def ids(*options: str) -> list[int]:
        found = json.loads(ugem.ok("reputation", "complaints", "--json", *options))
        return [c["id"] for c in found["items"]]

    assert ids() == [2, 1]
    assert ids("--connection", "agency.gov.kz") == [1]
    assert ids("--connection", "") == [2]
    assert ids("--since", str(start + 1)) == [2]
    assert ids("--since", "2027-01-12T13:30") == [2]  # Almaty time: 08:30Z
    assert ids("--limit", "1") == [2]
    answer = json.loads(ugem.ok("reputation", "complaints", "--json"))
    assert (answer["received"], answer["kept"], answer["dropped"], answer["cap"]) == (
        2,
        2,
        0,
        10_000,
    )
    assert answer["items"][1]["evidence"] == "DKIM-Signature d=agency.gov.kz"
    assert (answer["total"], answer["next_cursor"]) == (2, None)
    first = json.loads(ugem.ok("reputation", "complaints", "--json", "--limit", "1"))
    assert ids("--limit", "1", "--cursor", first["next_cursor"]) == [1]  # the next page


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--limit", "0"], "--limit"),
        (["--limit", "1001"], "--limit"),
        (["--since", "soon"], "--since"),
    ],
)
def test_complaints_with_a_bad_option_exit_2_naming_it(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    options: list[str],
    named: str,
) -> None:
    usage_error(
        operator(tmp_path, capsys, monkeypatch)("reputation", "complaints", *options), named
    )


def test_classify_shows_the_class_a_reply_gets_and_what_the_detector_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ugem = operator(tmp_path, capsys, monkeypatch)
    spamhaus = "5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org"
    shown = ugem.ok("reputation", "classify", "554", spamhaus)
    assert shown.split() == [
        "class", "blocklisted", "blocklist", "Spamhaus", "temporary", "False", "counted", "554",
    ]  # fmt: skip
    answer = json.loads(ugem.ok("reputation", "classify", "550", "5.1.1 user unknown", "--json"))
    assert answer == {"class": "unknown-user", "blocklist": "", "temporary": False, "counted": 550}
    usage_error(ugem("reputation", "classify", "550"), "classify")


def test_classify_bench_measures_every_reply_of_a_corpus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ugem = operator(tmp_path, capsys, monkeypatch)
    corpus = tmp_path / "corpus.toml"
    corpus.write_text(
        '[[reply]]\ncode = 421\ntext = "4.7.28 unusual rate"\n'
        '[[reply]]\ncode = 250\ntext = "2.0.0 OK"\n',
        encoding="utf-8",
    )
    found = json.loads(ugem.ok("reputation", "classify", "--bench", str(corpus), "--json"))
    assert found["replies"] == 2
    assert 0 < found["median_us"] <= found["max_us"]  # measured, not asserted fast
    corpus.write_text("[[other]]\n", encoding="utf-8")
    usage_error(ugem("reputation", "classify", "--bench", str(corpus)), "--bench")
