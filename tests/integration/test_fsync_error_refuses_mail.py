"""Scenario: the disk starts failing fsync (EIO) under a running node.

The spool promises 250 only after fsync. With fsync failing (an LD_PRELOAD
shim, tests/support/fsync_fault.c, makes the node's fsync and fdatasync
return EIO while a trigger file exists), no message may be acknowledged: the
client gets 451 4.3.0 and keeps its mail, /readyz answers 503 with the
reason, and nothing is delivered that was refused. When fsync works again
the node is ready and takes mail again, and everything it acknowledged
arrives exactly once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from tests.integration.test_full_disk_never_duplicates import data_reply, readiness, subjects
from tests.support.fsync_fault import fsync_fault_library
from tests.support.node import NodeProcess, node_relaying_to
from tests.support.sink import Sink
from tests.support.waiting import eventually


async def test_failing_fsync_acknowledges_nothing_and_says_so(tmp_path: Path, sink: Sink) -> None:
    trigger = tmp_path / "fsync-fails"
    library = fsync_fault_library(tmp_path)
    config, path = await node_relaying_to(tmp_path, sink)
    env = {"LD_PRELOAD": str(library), "UGEM_TEST_FSYNC_FAULT": str(trigger)}
    node = NodeProcess(path, config, env=env)
    node.start()
    try:
        await node.wait_ready()
        assert await asyncio.to_thread(data_reply, config, "before") == 250
        trigger.touch()
        codes = [await asyncio.to_thread(data_reply, config, f"during {n}") for n in range(3)]
        assert codes == [451, 451, 451]
        status, reason = readiness(node)
        assert status == 503 and "spool" in reason, reason
        trigger.unlink()
        assert await asyncio.to_thread(data_reply, config, "after") == 250
        await eventually(lambda: readiness(node)[0] == 200, 10, "/readyz 200 again")
        await sink.wait_until(lambda: {"before", "after"} <= set(subjects(sink)), 15, "mail")
        counts: Counter[str] = subjects(sink)
        assert counts["before"] == 1 and counts["after"] == 1
        assert not any(s.startswith("during") for s in counts), counts
    finally:
        node.kill()
