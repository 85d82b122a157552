"""Scenarios: the two legitimate paths through the gateway, and what may not pass.

Outbound: a connected organisation's server relays to an external domain,
whose next hop comes from `[delivery] routes` or from MX records served by a
private dnsmasq. Inbound: any internet server delivers to a connected domain,
which goes to that organisation's own servers. Everything else is refused at
RCPT. Clients: Python's smtplib and swaks, bound to different loopback
addresses to play different servers.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from relay import replies
from tests.support.clients import needs_swaks, swaks
from tests.support.node import (
    connect,
    node_config,
    node_relaying_to,
    running_node,
    send_mail,
    smtp_address,
)
from tests.support.sink import Sink


async def test_outbound_via_route_reaches_next_hop_with_received_header(
    tmp_path: Path, sink: Sink
) -> None:
    config, _ = await node_relaying_to(tmp_path, sink)
    async with running_node(config):
        sent = await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], "127.0.0.2", "hello")
        assert sent.code == replies.OK.code and "queued as" in sent.text
        await sink.wait_for(1)
    got = sink.messages[0]
    assert got.sender == "a@mdai.gov.kz"
    assert got.rcpts == ["x@example.org"]
    first = got.data.split(b"\r\n", 1)[0]
    assert first.startswith(b"Received: from client.test ([127.0.0.2])")
    queue_id = sent.text.rsplit(" ", 1)[-1]
    assert queue_id.encode() in got.data.split(b"\r\n\r\n", 1)[0]
    assert b"Subject: hello" in got.data


async def test_outbound_via_mx_from_private_dns(tmp_path: Path, dns_server: Any) -> None:
    sink = await Sink.start("127.0.0.9", 0)
    try:
        dns = await dns_server(
            mx={"ext.example": [(10, "mx1.ext.example")]}, a={"mx1.ext.example": ["127.0.0.9"]}
        )
        config, _ = node_config(
            tmp_path, delivery={"dns_servers": [dns.address], "smtp_port": sink.port}
        )
        await connect(config, "mdai.gov.kz", ["127.0.0.2"])
        async with running_node(config):
            sent = await send_mail(config, "a@mdai.gov.kz", ["user@ext.example"], "127.0.0.2")
            assert sent.ok
            await sink.wait_for(1)
        assert sink.messages[0].rcpts == ["user@ext.example"]
    finally:
        await sink.stop()


async def test_inbound_reaches_the_connections_own_server(tmp_path: Path) -> None:
    org_server = await Sink.start("127.0.0.5", 0)
    try:
        config, _ = node_config(tmp_path, delivery={"smtp_port": org_server.port})
        await connect(config, "mdai.gov.kz", ["127.0.0.5"], domains=["mdai.gov.kz", "mdai.kz"])
        async with running_node(config):
            sent = await send_mail(config, "someone@example.org", ["info@MDAI.kz"], "127.0.0.7")
            assert sent.ok
            await org_server.wait_for(1)
        assert org_server.messages[0].sender == "someone@example.org"
    finally:
        await org_server.stop()


async def test_outsider_to_unconnected_domain_is_refused_at_rcpt(tmp_path: Path) -> None:
    config, _ = node_config(tmp_path)
    await connect(config, "mdai.gov.kz", ["127.0.0.2"])
    async with running_node(config):
        sent = await send_mail(
            config, "someone@example.org", ["victim@elsewhere.example"], "127.0.0.7"
        )
    assert (sent.code, sent.text.split(" ", 1)[0]) == (
        replies.RELAY_DENIED.code,
        replies.RELAY_DENIED.status,
    )


async def test_connected_server_with_foreign_sender_is_refused(tmp_path: Path) -> None:
    config, _ = node_config(tmp_path)
    await connect(config, "mdai.gov.kz", ["127.0.0.2"])
    async with running_node(config):
        sent = await send_mail(config, "boss@gmail.example", ["x@example.org"], "127.0.0.2")
    assert sent.code == replies.SENDER_DENIED.code


@needs_swaks
async def test_swaks_relays_outbound_and_is_refused_as_outsider(tmp_path: Path, sink: Sink) -> None:
    config, _ = await node_relaying_to(tmp_path, sink)
    host, port = smtp_address(config)
    async with running_node(config):
        ok = await asyncio.to_thread(
            swaks, host, port, "a@mdai.gov.kz", "x@example.org", "127.0.0.2"
        )
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "queued as" in ok.stdout
        denied = await asyncio.to_thread(
            swaks, host, port, "a@example.net", "x@example.org", "127.0.0.8"
        )
        assert denied.returncode != 0
        assert f"{replies.RELAY_DENIED.code} {replies.RELAY_DENIED.status}" in denied.stdout
        await sink.wait_for(1)
    assert len(sink.messages) == 1
