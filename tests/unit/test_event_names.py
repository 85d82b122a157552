"""Every structured log event (`ugem.core.log.event`) is named in snake_case, one form for all."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CALL = re.compile(r'\bevent\(\s*[A-Za-z_.]+,\s*(?:logging\.[A-Z]+,\s*)?"([^"]*)"')
NAMED = re.compile(r'\bname(?:, [a-z_]+)+ = "([^"]*)"')  # `name, level = "..."`


def test_event_names_are_snake_case() -> None:
    found: dict[str, str] = {}
    for package in ("ugem", "relay", "anomaly", "admin"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for name in CALL.findall(text) + NAMED.findall(text):
                found[name] = str(path.relative_to(ROOT))
    assert len(found) > 40  # the pattern still finds the calls
    bad = {n: where for n, where in found.items() if not re.fullmatch(r"[a-z][a-z0-9_]*", n)}
    assert not bad, f"event names not in snake_case: {bad}"
