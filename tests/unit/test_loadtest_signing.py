"""`python -m loadtest sign`: the gateway's bench run as a child process, dkimpy beside it.

The runs last a few hundredths of a second per measurement and skip `openssl
speed` (it takes seconds), whose output is parsed from a recorded sample: this
checks the figures are gathered and shown, not how fast anything is.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from loadtest.__main__ import main, parser
from loadtest.signing import measure, parse_openssl, rows, table

SECONDS = 0.02
OPENSSL_MR = """+DTP:2048:private:rsa:1
+R2:1200:2048:1.00
+DTP:253:sign:Ed25519:1
+F2:2:2048:1031.746032:38374.603175
+F6:0:253:Ed25519:14215.384615:5811.688312
"""


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return measure(SECONDS, 2048, openssl=False)


def test_the_gateways_bench_and_dkimpy_are_measured(report: dict[str, Any]) -> None:
    ugem, dkimpy = report["ugem"], report["dkimpy"]
    assert [r["algorithm"] for r in ugem["results"]] == [
        "rsa-sha256", "rsa-sha256", "ed25519-sha256", "ed25519-sha256",
        "rsa-sha256+ed25519-sha256",
    ]  # fmt: skip
    assert all(r["per_second"] > 0 for r in ugem["results"])
    assert ugem["message_size"] == dkimpy["message_size"] == 2048
    assert dkimpy["count"] >= 1 and dkimpy["per_second"] > 0
    assert report["openssl"] is None


def test_the_table_shows_each_rate_and_whole_message_ratios_to_dkimpy(
    report: dict[str, Any],
) -> None:
    report = report | {"openssl": parse_openssl(OPENSSL_MR)}
    lines = table(report).splitlines()
    assert lines[0].startswith("DKIM signing, one core, 2048-byte message")
    body = {" ".join(line[:64].split()): line for line in lines[2:]}  # who, what: the line
    assert len(lines) - 2 == len(rows(report)) == 8
    dkimpy = report["dkimpy"]["per_second"]
    assert body["dkimpy dkim.sign rsa-sha256, whole message"].endswith("1.0x")
    rsa = report["ugem"]["results"][1]["per_second"]
    assert body["ugem (dkim_sign) rsa-sha256, whole message"].endswith(f"{rsa / dkimpy:.1f}x")
    assert body["openssl speed rsa2048, bare signature"].split()[-1] == "1,032"  # no ratio
    assert body["openssl speed ed25519, bare signature"].split()[-1] == "14,215"


def test_openssl_speed_machine_readable_output_is_parsed() -> None:
    assert parse_openssl(OPENSSL_MR) == {"rsa2048": 1031.746032, "ed25519": 14215.384615}
    assert parse_openssl("garbage\n+F2:x\n") == {}


def test_the_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sign", "--seconds", str(SECONDS), "--no-openssl", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"ugem", "dkimpy", "openssl"} and printed["openssl"] is None


def test_options() -> None:
    args = parser().parse_args(["sign", "--seconds", "3", "--size", "4096"])
    assert (args.seconds, args.size, args.no_openssl, args.json) == (3.0, 4096, False, False)
    with pytest.raises(SystemExit):
        parser().parse_args(["sign", "--seconds", "-1"])
