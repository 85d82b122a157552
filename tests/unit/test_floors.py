"""The floors of ARCHITECTURE.md hold: imports only go down (import-linter's contracts in
pyproject.toml), and the contracts name every module of the roof, so a new one cannot
slip past them."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import ugem

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = {"relay", "anomaly", "admin", "loadtest"}


def _contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _roof() -> set[str]:
    """Every module and package of `ugem` but the foundation."""
    return {f"ugem.{m.name}" for m in pkgutil.iter_modules(ugem.__path__) if m.name != "core"}


def test_the_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Contracts: {len(_contracts())} kept, 0 broken." in done.stdout


def test_the_contracts_name_every_module_of_the_roof() -> None:
    roof = _roof()
    assert {"ugem.cli", "ugem.node", "ugem.commands", "ugem.adapters"} <= roof
    foundation, _, nothing_imports_roof, _ = _contracts()
    assert foundation["source_modules"] == ["ugem.core"]
    assert set(foundation["forbidden_modules"]) == roof | DOMAINS
    assert set(nothing_imports_roof["forbidden_modules"]) == roof
    assert set(nothing_imports_roof["source_modules"]) == DOMAINS


def test_the_three_domains_are_independent() -> None:
    independence = [c for c in _contracts() if c["type"] == "independence"]
    assert [set(c["modules"]) for c in independence] == [{"relay", "anomaly", "admin"}]
