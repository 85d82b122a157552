"""Scenario: a decision made with the `ugem` CLI reaches the organisation's mail server.

The CLI commits its notices into the node's spool file as a second process
would. Suspended while the node is stopped, the notice waits in the spool and
is delivered once the node starts; resumed while it runs, the notice is
picked up by the node's next scan and delivered. Both reach the sink that
stands in for the organisation's server, from the postmaster, in Russian
with English below. The CLI runs in a thread, as it would in its own process.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.mail import read_notice
from tests.support.node import node_config, running_node
from tests.support.sink import Sink
from ugem.cli import main

DOMAIN, POSTMASTER = "akimat.gov.kz", "postmaster@sts.test"


async def ugem(config: Path, *argv: str) -> None:
    assert await asyncio.to_thread(main, ["--config", str(config), *argv]) == 0


async def test_cli_notices_are_delivered_by_the_node_stopped_or_running(tmp_path: Path) -> None:
    sink = await Sink.start("127.0.0.1", 0)
    config, path = node_config(
        tmp_path,
        admin={"postmaster": POSTMASTER},
        delivery={"routes": {DOMAIN: f"127.0.0.1:{sink.port}"}},
    )
    try:
        await ugem(path, "connection", "add", DOMAIN, "--org", "Акимат", "--kind",
                   "local-government", "--server", "127.0.0.2", "--lang", "ru",
                   "--contact", f"IT <it@{DOMAIN}>")  # fmt: skip
        await ugem(path, "connection", "suspend", DOMAIN, "--reason", "spam wave")
        async with running_node(config):
            [suspended] = await sink.wait_for(1, timeout=15)
            await ugem(path, "connection", "resume", DOMAIN, "--reason", "fixed")
            resumed = (await sink.wait_for(2, timeout=15))[1]
        for message in (suspended, resumed):
            assert (message.sender, message.rcpts) == (POSTMASTER, [f"it@{DOMAIN}"])
        russian, english = read_notice(suspended.data).parts
        assert "spam wave" in russian and english.startswith("Dear colleagues,")
        assert "fixed" in read_notice(resumed.data).parts[0]
    finally:
        await sink.stop()
