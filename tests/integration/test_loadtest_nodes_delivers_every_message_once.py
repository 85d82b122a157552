"""Scenario: `python -m loadtest nodes` with tiny numbers against real processes.

A private redis-server, the sink and `ugem serve` (one node on SQLite, one on Redis
without and with the shared traffic log, two nodes on one Redis): every setup delivers
every one of its 60 messages once, the two-node setup sends half to each node, and the
report has the shared log's cost and the two-against-one ratio.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from loadtest.nodes import SETUP_NAMES
from tests.support.peers import require


@pytest.mark.slow
async def test_every_setup_delivers_every_message_once(tmp_path: Path) -> None:
    redis_server = require(
        "redis-server", "redis-server is not installed (apt-get install redis-server)"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loadtest", "nodes", "--messages", "60", "--connections", "4",
        "--rounds", "1", "--settle", "0", "--stall", "10s", "--redis-server", redis_server,
        "--workdir", str(tmp_path / "work"), "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()
    result = json.loads(out)
    assert [run["setup"] for run in result["runs"]] == list(SETUP_NAMES)
    for run in result["runs"]:
        sink = run["sink"]
        assert (run["accepted"], sink["unique_ids"], sink["lost"], sink["duplicates"]) == (
            60, 60, 0, 0,
        ), run["setup"]  # fmt: skip
        assert run["cpu_s"]["gateway"] > 0 and run["end_to_end_rate"] > 0
    two = result["runs"][-1]["generators"]
    assert [(g["accepted"], g["connections"]) for g in two] == [(30, 2), (30, 2)]
    assert two[0]["target"] != two[1]["target"]  # one generator to each node
    assert result["shared_traffic_cost_us_per_message"]["total"] is not None
    assert result["two_vs_one"]["end_to_end"]["count"] == 1
    assert result["complete"] is True
    assert not (tmp_path / "work").exists()  # removed without --keep
