"""Scenario: `loadtest restart` fills a gateway's queue, restarts it and times the delivery.

300 messages are accepted while the next hop is down and all stay queued; the
node stops cleanly on SIGTERM; once restarted over the same spool with the
sink listening, it becomes ready and every message arrives exactly once.

The times are each measured from the spawn, but only first <= last arrival is
an order the node promises. `ready` is not ordered against the arrivals: the
node's scheduler starts delivering the recovered queue before its SMTP and
admin listeners are up (readiness is about taking traffic), and `ready` is
when the harness's /readyz poll (every 0.1 s) saw it, while 300 messages are
delivered in ~0.05-0.15 s.
"""

from __future__ import annotations

import asyncio
import json
import sys


async def test_restart_delivers_the_whole_queue() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loadtest", "restart", "--messages", "300", "--connections", "10",
        "--stall", "20s", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["fill"]["accepted"] == 300
    assert sum(result["queued"].values()) == 300
    assert result["stop"]["exit"] == 0
    assert "300" in result["made_due"]  # what `ugem queue retry --all` said
    times = result["restart_s"]
    assert times["ready"] > 0
    assert 0 < times["first_arrival"] <= times["last_arrival"]
    sink = result["sink"]
    assert (sink["unique_ids"], sink["duplicates"], sink["lost"], sink["unexpected"]) == (
        300, 0, 0, 0,
    )  # fmt: skip
    assert result["complete"] is True
    assert result["delivery_rate"] == 300 / times["last_arrival"]
    assert "sink on" in err.decode()  # the progress notes go to stderr
