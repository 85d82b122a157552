"""Scenario: Postfix's own load client, smtp-source, relays through the gateway.

A third SMTP client implementation besides smtplib and swaks: 200 messages
over 10 parallel sessions from a connected server (smtp-source connects from
127.0.0.1, so that is the connection's address here). Every message it sent
arrives once at the next hop.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from tests.support.node import node_relaying_to, running_node, smtp_address
from tests.support.peers import needs
from tests.support.sink import Sink

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"


@needs(Path(SMTP_SOURCE).exists(), "Postfix's smtp-source is missing")
async def test_smtp_source_messages_all_arrive_once(tmp_path: Path, sink: Sink) -> None:
    config, _ = await node_relaying_to(tmp_path, sink, servers=["127.0.0.1"])
    host, port = smtp_address(config)
    async with running_node(config):
        proc = await asyncio.create_subprocess_exec(
            SMTP_SOURCE,
            "-s",
            "10",
            "-m",
            "200",
            "-l",
            "2048",
            "-f",
            "load@mdai.gov.kz",
            "-t",
            "sink@example.org",
            "-M",
            "source.test",
            f"{host}:{port}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        assert await proc.wait() == 0, out.decode()
        await sink.wait_for(200, timeout=60)
    assert len(sink.messages) == 200
    assert {m.sender for m in sink.messages} == {"load@mdai.gov.kz"}
    assert all(m.data.startswith(b"Received: from source.test") for m in sink.messages)
