"""The registry's copy on disk: every field back, written atomically, never over a newer one,
and a damaged file never taken for an empty registry."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.connections import full, plain
from ugem.core.errors import StoreError
from ugem.core.registry_copy import CopyFile, RegistryCopy, copy_paths, read_copy, write_copy

COPY = RegistryCopy("g1", 57, 1_767_225_600.5, (full(), plain("a.gov.kz", "192.0.2.10")))


def test_a_copy_comes_back_whole(tmp_path: Path) -> None:
    path = tmp_path / "var" / "registry-copy.json"  # its directory is made
    write_copy(path, COPY)
    assert read_copy(path) == COPY
    assert json.loads(path.read_text(encoding="utf-8"))["format"] == 1
    assert [p.name for p in tmp_path.joinpath("var").iterdir()] == [path.name]  # no temp file


def test_no_file_is_no_copy_and_a_damaged_one_an_error(tmp_path: Path) -> None:
    path = tmp_path / "registry-copy.json"
    assert read_copy(path) is None
    path.write_text('{"format": 1, "generation": "g1", "version": 5', encoding="utf-8")
    with pytest.raises(StoreError, match=r"registry-copy\.json: is damaged"):
        read_copy(path)
    path.write_text('{"format": 9}', encoding="utf-8")
    with pytest.raises(StoreError, match="format 1"):
        read_copy(path)


def test_a_failed_write_keeps_the_old_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "registry-copy.json"
    write_copy(path, COPY)

    def full_disk(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(StoreError, match=r"cannot be written: .*No space left"):
        write_copy(path, RegistryCopy("g1", 58, 2.0, ()))
    monkeypatch.undo()
    assert read_copy(path) == COPY
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # its temporary file removed


async def test_an_older_copy_of_the_same_generation_is_not_written(tmp_path: Path) -> None:
    copies = CopyFile(tmp_path / "registry-copy.json")
    await copies.save(COPY)
    await copies.save(RegistryCopy("g1", 56, COPY.read_at + 10, ()))  # an older version
    assert read_copy(copies.path) == COPY
    fresher = RegistryCopy("g1", 57, COPY.read_at + 60, COPY.connections)  # confirmed later
    await copies.save(fresher)
    assert read_copy(copies.path) == fresher and copies.written_at == fresher.read_at
    other = RegistryCopy("g2", 3, COPY.read_at + 61, ())  # a store made anew, taken
    await copies.save(other)
    assert read_copy(copies.path) == other


def test_the_copies_of_a_data_dir_are_every_workers(tmp_path: Path) -> None:
    for name in ("registry-copy.json", "registry-copy.w1.json", "registry.db"):
        (tmp_path / name).write_text("{}", encoding="utf-8")
    (tmp_path / ".registry-copy.json.x1.tmp").write_text("{}", encoding="utf-8")
    assert [p.name for p in copy_paths(tmp_path)] == [
        "registry-copy.json",
        "registry-copy.w1.json",
    ]
