"""`ugem ...` driven in-process through `ugem.cli.main`, as an operator types it.

`Ugem(config, db, capsys)` calls `main` with `--config` and returns the exit
code and what was printed; `ok(...)` asserts success with nothing on stderr;
`usage_error(result, option)` asserts a one-line error naming the option
(exit 2). `cli_config(tmp_path, extra)` writes a config whose data dir is
under tmp_path (so the SQLite store and the spool are fresh files) plus
`extra` TOML. `operator(tmp_path, capsys, monkeypatch, extra)` is the `Ugem`
of a test: such a config, no `UGEM_*` variables from outside, and the login
name `operator1` (the audit log's actor is `cli:operator1`). `spooled(config)`
reads the messages the CLI committed to the node's spool, with their text,
as a second process would; `audit_log(db, target)` reads the audit entries.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from relay.queue.message import QueuedMessage
from relay.queue.spool import Spool, spool_path
from ugem.cli import main
from ugem.core.clock import SystemClock
from ugem.core.config import load_config
from ugem.core.metrics import Metrics
from ugem.core.store.base import AuditEntry
from ugem.core.store.sqlite import SqliteStore


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Ugem:
    config: Path
    db: Path
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *argv: str, config: bool = True) -> Result:
        args = ["--config", str(self.config), *argv] if config else list(argv)
        code = main(args)
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def ok(self, *argv: str) -> str:
        result = self(*argv)
        assert (result.code, result.err) == (0, ""), result
        return result.out

    def spooled(self) -> list[QueuedMessage]:
        return spooled(self.config)


def cli_config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "ugem.toml"
    text = f'[node]\ndata_dir = "{tmp_path / "data"}"\n{extra}'
    config.write_text(text, encoding="utf-8")
    return config


def operator(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: str = "",
) -> Ugem:
    """The CLI as operator1 types it, on a fresh config (`cli_config(tmp_path, extra)`) and
    a node's data directory, empty (as `ugem serve` makes it)."""
    (tmp_path / "data").mkdir(exist_ok=True)
    monkeypatch.delenv("UGEM_CONFIG", raising=False)
    monkeypatch.delenv("UGEM_STORE_URL", raising=False)
    monkeypatch.setenv("USER", "operator1")  # the actor in the audit log: cli:operator1
    return Ugem(cli_config(tmp_path, extra), tmp_path / "data" / "registry.db", capsys)


def usage_error(result: Result, option: str) -> None:
    """Exit 2 and one line on stderr, `ugem: error: OPTION: ...`."""
    assert result.code == 2
    assert result.err.startswith(f"ugem: error: {option}: ")
    assert result.err.count("\n") == 1


def audit_log(db: Path, target: str) -> list[AuditEntry]:
    """The audit entries about `target` in the SQLite store `db`, newest first."""

    async def read() -> list[AuditEntry]:
        store = SqliteStore(db)
        try:
            return await store.audit_log(target=target)
        finally:
            await store.close()

    return asyncio.run(read())


def spooled(config_file: Path) -> list[QueuedMessage]:
    """Every message in worker 0's spool of the node `config_file` configures, with text."""
    path = spool_path(load_config(config_file, env={}))

    async def read() -> list[QueuedMessage]:
        spool = Spool(path, SystemClock(), Metrics())
        await spool.open(recover=False)
        try:
            found = [await spool.get(m.id) for m in await spool.list()]
            return [m for m in found if m is not None]
        finally:
            await spool.close()

    return asyncio.run(read()) if path.exists() else []
