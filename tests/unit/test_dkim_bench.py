"""`ugem dkim bench`: the report's shape, a rate above zero for every measurement, the options.

Each run lasts a few hundredths of a second per measurement: this checks that
the benchmark measures the project's signer and reports it, not how fast it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import dkim
import pytest

from tests.support.cli import Ugem, operator
from ugem.commands.dkim import bench_message, run_bench

SECONDS = 0.02
ALL = [
    ("signature", "rsa-sha256"),
    ("message", "rsa-sha256"),
    ("signature", "ed25519-sha256"),
    ("message", "ed25519-sha256"),
    ("message", "rsa-sha256+ed25519-sha256"),
]


@pytest.fixture
def ugem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Ugem:
    return operator(tmp_path, capsys, monkeypatch)


def test_both_algorithms_report_every_measurement_with_a_rate() -> None:
    report = run_bench(SECONDS, 4000, "both")
    assert report["message_size"] == 4000 and report["seconds"] == SECONDS
    assert report["openssl"].startswith("OpenSSL") and report["python"].startswith("3.")
    assert [(r["what"], r["algorithm"]) for r in report["results"]] == ALL
    for r in report["results"]:
        assert r["count"] >= 1 and r["seconds"] >= SECONDS
        assert r["per_second"] == pytest.approx(r["count"] / r["seconds"], rel=1e-3)
        assert r["per_second"] > 0


@pytest.mark.parametrize(("algorithm", "wanted"), [("rsa", ALL[:2]), ("ed25519", ALL[2:4])])
def test_one_algorithm_measures_only_its_own(algorithm: str, wanted: list[tuple[str, str]]) -> None:
    report = run_bench(SECONDS, 2048, algorithm)
    assert [(r["what"], r["algorithm"]) for r in report["results"]] == wanted


def test_the_message_has_the_size_asked_and_dkimpy_can_parse_it() -> None:
    head = bench_message(1)  # smaller than its headers: the headers alone
    assert head.endswith(b"\r\n\r\n") and head.count(b"\r\n\r\n") == 1
    for size in (500, 2048, 2049, 100_000):
        data = bench_message(size)
        headers, _ = dkim.rfc822_parse(data)
        assert [n for n, _ in headers][:2] == [b"From", b"To"]
        assert data.endswith(b"\r\n") and b"\n" not in data.replace(b"\r\n", b"")
        assert len(data) in (size, size - 1)


def test_cli_prints_json_or_a_table(ugem: Ugem, tmp_path: Path) -> None:
    report = json.loads(
        ugem.ok("dkim", "bench", "--seconds", str(SECONDS), "--algorithm", "rsa", "--json")
    )
    assert [r["algorithm"] for r in report["results"]] == ["rsa-sha256", "rsa-sha256"]
    assert all(r["per_second"] > 0 for r in report["results"])
    header, *rows = ugem.ok("dkim", "bench", "--seconds", str(SECONDS)).splitlines()[1:]
    assert header.split() == ["WHAT", "ALGORITHM", "PER_SECOND", "COUNT", "SECONDS"]
    assert [row.split()[:2] for row in rows] == [list(pair) for pair in ALL]
    assert not (tmp_path / "data" / "dkim").exists()  # throwaway keys, not the node's


@pytest.mark.parametrize(
    ("args", "option"),
    [(["--seconds", "0"], "--seconds"), (["--seconds", "x"], "--seconds"),
     (["--size", "0"], "--size"), (["--algorithm", "dsa"], "--algorithm")],
)  # fmt: skip
def test_bad_options_exit_2_naming_them(ugem: Ugem, args: list[str], option: str) -> None:
    with pytest.raises(SystemExit) as caught:
        ugem("dkim", "bench", *args)
    assert caught.value.code == 2
    assert f"argument {option}: " in ugem.capsys.readouterr().err
