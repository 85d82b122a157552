"""The CLI finds a node's data from any directory and never makes an empty one by accident.

Run where there is no node's data, a command that only reads it (`queue list`,
`connection list`, `status`...) stops with one line naming `node.data_dir`
and the ways to point at the node, and creates nothing; with `--config FILE`
whose `data_dir` is relative, it finds the data beside the file from any
working directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ugem.cli import main


def test_a_reading_command_where_no_node_is_stops_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("UGEM_CONFIG", raising=False)
    for words in (["queue", "list"], ["connection", "list"], ["status"], ["audit", "verify"]):
        assert main(words) == 2, words
        err = capsys.readouterr().err
        assert err.startswith(f"ugem: error: node.data_dir: no node data at {tmp_path / 'var'}")
        assert err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # no var/, no registry, no spool


def test_a_config_file_elsewhere_finds_the_node_data_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "ugem.toml").write_text('[node]\ndata_dir = "state"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    add = ["connection", "add", "mdai.gov.kz", "--org", "Ministry", "--kind", "state-body"]
    assert main(["--config", str(etc / "ugem.toml"), *add, "--server", "127.0.0.2"]) == 0
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["--config", "../etc/ugem.toml", "connection", "list"]) == 0
    assert "mdai.gov.kz" in capsys.readouterr().out
    assert (etc / "state" / "registry.db").exists() and list(elsewhere.iterdir()) == []
