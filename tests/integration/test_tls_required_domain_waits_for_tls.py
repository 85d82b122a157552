"""Scenario: `[delivery] tls_required_domains`, a destination reached only over verified TLS.

example.org's MX (mx.example.org, served by a private dnsmasq) is a sink on
loopback. Without STARTTLS it gets nothing: the message stays in the spool,
deferred with a 4.7.4 reason naming TLS, and is retried on the normal
schedule (time moves by a FakeClock) without ever going out in clear. With
STARTTLS and a certificate for mx.example.org from the private CA that
`tls_ca_file` names, it is delivered over TLS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from relay.queue.message import QueueState
from tests.support.node import connect, node_config, queued_until, running_node, send_mail
from tests.support.sink import Sink
from tests.support.tls_cert import TestCa, server_context
from ugem.core.clock import FakeClock
from ugem.core.config import Config

MX_ADDRESS = "127.0.0.11"
REASON = "TLS required for example.org: next hop mx.example.org offers no STARTTLS"


async def tls_required_node(
    tmp_path: Path, dns_server: Any, sink: Sink, ca: TestCa
) -> tuple[Config, Path]:
    dns = await dns_server(
        mx={"example.org": [(10, "mx.example.org")]}, a={"mx.example.org": [MX_ADDRESS]}
    )
    delivery = {
        "dns_servers": [dns.address],
        "smtp_port": sink.port,
        "tls_required_domains": ["example.org"],
        "tls_ca_file": str(ca.cert_path),
    }
    config, path = node_config(tmp_path, delivery=delivery)
    await connect(config, "mdai.gov.kz", ["127.0.0.2"])
    return config, path


async def test_a_next_hop_without_starttls_gets_nothing_and_the_mail_waits(
    tmp_path: Path, dns_server: Any
) -> None:
    sink = await Sink.start(MX_ADDRESS, 0)
    heard: list[str] = []
    sink.mail_reply = lambda address: heard.append(address)
    try:
        config, _ = await tls_required_node(tmp_path, dns_server, sink, TestCa.create(tmp_path))
        clock = FakeClock()
        async with running_node(config, clock) as node:
            sent = await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], "127.0.0.2")
            assert sent.ok, sent.text
            queue_id = sent.text.rsplit(" ", 1)[-1]
            first = await queued_until(node, queue_id, lambda m: m.attempts == 1)
            assert (first.state, first.last_error) == (QueueState.DEFERRED, REASON)
            clock.advance(config.delivery.max_backoff + 1)  # the retry is due
            again = await queued_until(node, queue_id, lambda m: m.attempts == 2)
            assert (again.state, again.last_error) == (QueueState.DEFERRED, REASON)
        assert heard == [] and sink.messages == [] and sink.connections == 2
    finally:
        await sink.stop()


async def test_a_next_hop_with_a_certificate_from_the_ca_gets_the_mail_over_tls(
    tmp_path: Path, dns_server: Any
) -> None:
    ca = TestCa.create(tmp_path)
    (tmp_path / "mx").mkdir()
    sink = await Sink.start(
        MX_ADDRESS, 0, tls=server_context(*ca.issue(tmp_path / "mx", "mx.example.org"))
    )
    try:
        config, _ = await tls_required_node(tmp_path, dns_server, sink, ca)
        async with running_node(config):
            sent = await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], "127.0.0.2")
            assert sent.ok, sent.text
            got = (await sink.wait_for(1))[0]
        assert got.tls and got.rcpts == ["x@example.org"]
    finally:
        await sink.stop()
