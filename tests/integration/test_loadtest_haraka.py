"""Scenario: a small comparison through a real Haraka, Python generator to Python sink.

200 messages over 5 connections go through a private Haraka (installed from npm
by tests/install-system-deps.sh) set up as a store-and-forward relay: each one the
relay ACL let in is queued on disk by Haraka's outbound and delivered from there to
the sink, which sees every accepted id exactly once. The measurement carries
Haraka's version, the settings written and the note on what its queue fsyncs; the
instance is stopped at the end (nothing listens on its port any more).

Without Haraka (or Node.js) installed the test is skipped, or fails under
UGEM_TEST_REQUIRE_PEERS=1.
"""

from __future__ import annotations

import io
import shutil
import socket
from pathlib import Path

from loadtest import compare, haraka
from loadtest.compare import CompareOptions
from tests.support.peers import needs

needs_haraka = needs(
    haraka.is_installed() and shutil.which("node") is not None,
    f"Haraka {haraka.MAJOR} is not installed in {haraka.prefix()} (or node is missing): "
    "tests/install-system-deps.sh installs it with npm",
)


@needs_haraka
async def test_every_message_through_haraka_arrives_once(tmp_path: Path) -> None:
    options = CompareOptions(
        messages=200, connections=5, per_connection=40, only=("haraka",), settle=0.0,
        stall=10.0, timeout=30.0, workdir=tmp_path / "work", keep=True,
    )  # fmt: skip
    log = io.StringIO()
    result = await compare.compare(options, log)
    measured = result.get("haraka")
    assert measured is not None, log.getvalue()
    report, sink = measured.report, measured.sink
    assert (report.sent, report.accepted, report.refused, report.failed) == (200, 200, {}, {})
    assert (sink["messages"], sink["unique_ids"], sink["duplicates"]) == (200, 200, 0)
    assert (sink["lost"], sink["unexpected"], sink["without_id"]) == (0, 0, 0)
    assert measured.version == f"Haraka {haraka.version()}"
    assert measured.note == haraka.DURABILITY
    assert "relay_dest_domains.ini" in measured.settings
    assert (tmp_path / "work" / "haraka" / "haraka" / "config" / "queue_dir").exists()
    port = int(measured.settings["smtp.ini"].split("127.0.0.1:")[1].split()[0])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # stopped
