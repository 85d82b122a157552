"""`ugem store status|restore`, and a store that cannot be reached: exit 75, one line.

A node's copy is made as a node makes it (a `Registry` with its `CopyFile` in the
data dir, synced); "the store lost its data" is its SQLite file deleted.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from loadtest.ports import free_port
from tests.support.cli import Ugem, audit_log, operator
from tests.support.connections import plain
from ugem.core.clock import SystemClock
from ugem.core.registry import Registry
from ugem.core.registry_copy import COPY_NAME, CopyFile, RegistryCopy, read_copy
from ugem.core.store.sqlite import SqliteStore


def node_copy(ugem: Ugem) -> RegistryCopy:
    """The store gets two connections; a node's registry reads it and keeps its copy."""

    async def run() -> None:
        store = SqliteStore(ugem.db)
        try:
            await store.add(plain("a.gov.kz", "192.0.2.10"))
            await store.add(plain("b.gov.kz", "192.0.2.20"))
            copy = CopyFile(ugem.db.parent / COPY_NAME)
            await Registry(store, SystemClock(), copy=copy).sync()
        finally:
            await store.close()

    asyncio.run(run())
    copy = read_copy(ugem.db.parent / COPY_NAME)
    assert copy is not None
    return copy


def test_status_shows_the_store_and_what_each_copy_makes_of_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ugem = operator(tmp_path, capsys, monkeypatch)
    copy = node_copy(ugem)
    out = ugem.ok("store", "status")
    assert out.startswith(f"store: generation {copy.generation}, version {copy.version}, 2 conn")
    assert "taken" in out
    found = json.loads(ugem.ok("store", "status", "--json"))
    assert [c["store"] for c in found["copies"]] == ["taken"]
    ugem.db.unlink()
    found = json.loads(ugem.ok("store", "status", "--json"))
    assert found["generation"] is None and found["connections"] == 0
    assert "no generation" in found["copies"][0]["store"]


def test_restore_writes_the_copy_back_into_a_store_that_lost_its_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ugem = operator(tmp_path, capsys, monkeypatch)
    copy = node_copy(ugem)
    refused = ugem("store", "restore")
    assert (refused.code, refused.err.count("\n")) == (1, 1)
    assert refused.err.startswith("ugem: the store needs no restore: ")
    assert "--force" in refused.err

    ugem.db.unlink()
    out = ugem.ok("store", "restore")
    assert out.startswith(f"restored 2 connections from {ugem.db.parent / COPY_NAME}")
    assert "it is empty or lost its data" in out

    async def read() -> tuple[tuple[str | None, int], list[str]]:
        store = SqliteStore(ugem.db)
        try:
            return await store.generation(), [c.id for c in await store.list()]
        finally:
            await store.close()

    (generation, version), ids = asyncio.run(read())
    assert (generation, ids) == (copy.generation, ["a.gov.kz", "b.gov.kz"])
    assert version > copy.version
    [entry] = audit_log(ugem.db, copy.generation)
    assert (entry.actor, entry.action) == ("cli:operator1", "store.restore")


def test_restore_needs_a_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ugem = operator(tmp_path, capsys, monkeypatch)
    result = ugem("store", "restore", "--from-copy", str(tmp_path / "nothing.json"))
    assert result.code == 2
    assert result.err.startswith("ugem: error: --from-copy: no registry copy found")


def test_a_store_that_cannot_be_reached_is_exit_75_and_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there
    ugem = operator(tmp_path, capsys, monkeypatch, f'[store]\nurl = "{url}"\n')
    for words in (("connection", "list"), ("connection", "suspend", "a.gov.kz", "--reason", "x")):
        result = ugem(*words)
        assert result.code == 75, result
        assert result.err.startswith(f"ugem: store unavailable: redis store {url}: ")
        assert result.err.count("\n") == 1 and "Traceback" not in result.err
