"""Scenario: a connected server relays over STARTTLS with swaks (`--tls`) and with smtplib.

Both get 250 over TLS, and the message that reaches the next hop names the
inbound hop's TLS version and cipher in the gateway's `Received:` header, the
way Postfix does.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import ssl
from pathlib import Path

from tests.support.clients import message, needs_swaks, swaks
from tests.support.node import node_relaying_to, running_node, smtp_address
from tests.support.sink import Sink
from tests.support.tls_cert import client_context, self_signed

USING = re.compile(rb"\r\n\t\(using (TLSv1\.[23]) with cipher ([A-Z0-9_-]+) \((\d+)/(\d+) bits\)\)")


def smtplib_starttls(host: str, port: int) -> tuple[int, str]:
    """One message over STARTTLS from 127.0.0.2: the DATA reply and the TLS version."""
    with smtplib.SMTP(host, port, source_address=("127.0.0.2", 0), timeout=20) as client:
        client.ehlo("client.test")
        client.starttls(context=client_context())
        client.ehlo("client.test")
        client.mail("a@mdai.gov.kz")
        client.rcpt("x@example.org")
        code, _ = client.data(message("a@mdai.gov.kz", "x@example.org", "over smtplib"))
        sock = client.sock
        assert isinstance(sock, ssl.SSLSocket)
        return code, str(sock.version())


@needs_swaks
async def test_swaks_and_smtplib_are_served_over_starttls(tmp_path: Path, sink: Sink) -> None:
    cert, key = self_signed(tmp_path)
    config, _ = await node_relaying_to(
        tmp_path, sink, smtp={"tls_cert": str(cert), "tls_key": str(key)}
    )
    host, port = smtp_address(config)
    async with running_node(config):
        by_swaks = await asyncio.to_thread(
            swaks, host, port, "a@mdai.gov.kz", "x@example.org", "127.0.0.2", "--tls"
        )
        assert by_swaks.returncode == 0, by_swaks.stdout + by_swaks.stderr
        assert "<~  250 2.0.0 Ok: queued as" in by_swaks.stdout  # "~": read over TLS
        code, version = await asyncio.to_thread(smtplib_starttls, host, port)
        assert code == 250
        got = await sink.wait_for(2)
    versions = []
    for received in got:
        head = received.data.split(b"\r\n\r\n", 1)[0]
        found = USING.search(head)
        assert found is not None, head
        versions.append(found.group(1).decode())
    assert version in versions and set(versions) <= {"TLSv1.2", "TLSv1.3"}
