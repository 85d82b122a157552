"""`ugem ...` driven in-process through `ugem.cli.main`, as an operator types it.

`Ugem(config, db, capsys)` calls `main` with `--config` and returns the exit
code and what was printed; `ok(...)` asserts success with nothing on stderr.
`cli_config(tmp_path, extra)` writes a config whose data dir is under
tmp_path (so the SQLite store and the spool are fresh files) plus `extra`
TOML. `spooled(config)` reads the messages the CLI committed to the node's
spool, with their text, as a second process would.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from relay.message import QueuedMessage
from relay.spool import Spool, spool_path
from ugem.cli import main
from ugem.clock import SystemClock
from ugem.config import load_config
from ugem.metrics import Metrics


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
