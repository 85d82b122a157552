"""Scenario: the node is killed (SIGKILL) after the next hop took a message, before the 250.

The next hop has the message, the node never learnt it: the spool still holds
it, so after the restart the node delivers it again. That is the one
duplicate the design accepts ("a duplicate is better than a loss"), and it
must be only one: the second delivery is recorded and the message leaves the
spool, while mail sent after the restart arrives as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from relay.queue.spool import spool_path
from tests.integration.test_full_disk_never_duplicates import subjects
from tests.support.node import NodeProcess, node_relaying_to, send_mail
from tests.support.sink import Sink
from tests.support.waiting import eventually
from ugem.core.config import Config


def queued(config: Config) -> int:
    """Messages in the node's spool, read as another process would."""
    with contextlib.closing(sqlite3.connect(spool_path(config))) as db:
        return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])


async def test_a_crash_before_the_removal_delivers_once_more_and_no_more(
    tmp_path: Path, sink: Sink
) -> None:
    config, path = await node_relaying_to(tmp_path, sink)
    node = NodeProcess(path, config)
    node.start()
    try:
        await node.wait_ready()
        sink.data_gate = asyncio.Event()
        await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], "127.0.0.2", "crash")
        await sink.wait_until(lambda: sink.in_data == 1, 15, "the node in DATA at the hop")
        sink.data_gate.set()  # the hop keeps the message and answers 250 ...
        node.kill()  # ... to a node already dead (nothing ran in between on this loop)
        await sink.wait_until(lambda: subjects(sink)["crash"] == 1, 5, "the hop's copy")
        sink.data_gate = None
        node.start()
        await node.wait_ready()
        await sink.wait_until(lambda: subjects(sink)["crash"] == 2, 15, "the redelivery")
        await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], "127.0.0.2", "after")
        await sink.wait_until(lambda: subjects(sink)["after"] == 1, 15, "mail after restart")
        await eventually(lambda: queued(config) == 0, 10, "an empty spool")
        assert subjects(sink)["crash"] == 2
    finally:
        node.kill()
