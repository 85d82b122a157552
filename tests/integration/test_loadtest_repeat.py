"""Scenario: `compare --repeat 2` through a real gateway, Python generator to Python sink.

100 messages over 5 connections, twice (a fresh node and sink each round): both runs are
kept, every accepted message arrived once in each, the medians lie within the runs'
range, and the text and JSON reports show them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from loadtest import rounds
from loadtest.compare import CompareOptions


async def test_two_rounds_through_the_gateway(tmp_path: Path) -> None:
    options = CompareOptions(
        messages=100, connections=5, per_connection=20, only=("ugem",), settle=0.0,
        stall=10.0, timeout=30.0, workdir=tmp_path / "work",
    )  # fmt: skip
    log = io.StringIO()
    done = await rounds.compare_rounds(options, 2, log)
    runs = done.runs["ugem"]
    assert len(runs) == 2 and done.orders == [["ugem"], ["ugem"]], log.getvalue()
    for run in runs:
        assert (run.report.accepted, run.sink["unique_ids"], run.sink["lost"]) == (100, 100, 0)
        assert run.sink["duplicates"] == 0
    e2e = done.spread("ugem", "e2e")
    assert e2e is not None and e2e.count == 2 and e2e.low <= e2e.median <= e2e.high
    assert "round 2/2: ugem" in log.getvalue()
    assert "Medians of 2 rounds" in rounds.render_text(done)
    data = json.loads(json.dumps(rounds.render_json(done)))
    assert len(data["rounds"]) == 2 and data["summary"]["ugem"]["p99"]["n"] == 2
    assert not (tmp_path / "work").exists()  # removed: not kept
