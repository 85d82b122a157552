"""Scenario: example.org publishes an MTA-STS policy (RFC 8461); a node relays mail to it.

A private dnsmasq serves `_mta-sts.example.org` (TXT), the MX mx.example.org
and the addresses of mx.example.org and mta-sts.example.org on loopback. The
policy host is an HTTPS server on port 443 (the port a sender asks; binding it
takes root, else the test is skipped) with a certificate for
mta-sts.example.org from a private CA, which `tls_ca_file` names. Under mode
enforce the mail leaves only over STARTTLS verified for an MX host the policy
names, else it waits in the spool (deferred 4.7.x) and nothing is sent; under
mode testing it leaves as usual and what would have failed is logged and
counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from relay.queue.message import QueuedMessage, QueueState
from tests.support.https_server import HttpsServer, policy_host
from tests.support.node import connect, node_config, running_node, send_mail
from tests.support.sink import Sink
from tests.support.tls_cert import TestCa, server_context
from tests.support.waiting import eventually
from ugem.core.config import Config
from ugem.node import Node

MX_ADDRESS = "127.0.0.21"
POLICY_ADDRESS = "127.0.0.22"
WHY = "TLS required by the MTA-STS policy of example.org: next hop mx.example.org"


def policy(mode: str, mx: str = "mx.example.org") -> str:
    return f"version: STSv1\nmode: {mode}\nmx: {mx}\nmax_age: 86400\n"


@dataclass
class Scene:
    ca: TestCa
    https: HttpsServer
    directory: Path

    async def sink(self, tls: bool) -> Sink:
        """The MX host, with STARTTLS and a certificate from the CA, or without STARTTLS."""
        if not tls:
            return await Sink.start(MX_ADDRESS, 0)
        (self.directory / "mx").mkdir()
        cert = self.ca.issue(self.directory / "mx", "mx.example.org")
        return await Sink.start(MX_ADDRESS, 0, tls=server_context(*cert))


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    ca = TestCa.create(tmp_path)
    (tmp_path / "policy").mkdir()
    context = server_context(*ca.issue(tmp_path / "policy", "mta-sts.example.org"))
    https = await policy_host(POLICY_ADDRESS, context)
    try:
        yield Scene(ca, https, tmp_path)
    finally:
        await https.stop()


async def sts_node(tmp_path: Path, dns_server: Any, scene: Scene, sink: Sink) -> Config:
    dns = await dns_server(
        mx={"example.org": [(10, "mx.example.org")]},
        a={"mx.example.org": [MX_ADDRESS], "mta-sts.example.org": [POLICY_ADDRESS]},
        txt={"_mta-sts.example.org": "v=STSv1; id=20260101T000000;"},
    )
    delivery = {
        "dns_servers": [dns.address],
        "smtp_port": sink.port,
        "tls_ca_file": str(scene.ca.cert_path),
    }
    config, _ = node_config(tmp_path, delivery=delivery)
    await connect(config, "mdai.gov.kz", ["127.0.0.2"])
    return config


async def relay_one(config: Config) -> str:
    sent = await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], "127.0.0.2")
    assert sent.ok, sent.text
    return sent.text.rsplit(" ", 1)[-1]


async def first_attempt(node: Node, queue_id: str, timeout: float = 10) -> QueuedMessage:
    """The spooled message once its first delivery attempt is recorded (checked as the
    node works)."""
    assert node.spool is not None
    deadline = time.monotonic() + timeout
    while True:
        msg = await node.spool.get(queue_id, with_data=False)
        assert msg is not None, f"{queue_id} left the spool"
        if msg.attempts >= 1:
            return msg
        assert time.monotonic() < deadline, f"{queue_id} was not tried within {timeout} s"
        await asyncio.sleep(0.02)


def count(node: Node, metric: str, **labels: str) -> float:
    return node.metrics.registry.get_sample_value(metric, labels) or 0.0


async def test_enforce_delivers_over_tls_verified_for_the_mx_host(
    tmp_path: Path, dns_server: Any, scene: Scene
) -> None:
    scene.https.serve(policy("enforce"))
    sink = await scene.sink(tls=True)
    try:
        config = await sts_node(tmp_path, dns_server, scene, sink)
        async with running_node(config) as node:
            await relay_one(config)
            got = (await sink.wait_for(1))[0]
            assert count(node, "ugem_mta_sts_fetches_total", result="ok") == 1
        assert got.tls and got.rcpts == ["x@example.org"]
        assert scene.https.requests == [("/.well-known/mta-sts.txt", "mta-sts.example.org")]
    finally:
        await sink.stop()


@pytest.mark.parametrize(
    ("tls", "mx", "status", "reason"),
    [
        (False, "mx.example.org", "4.7.4", f"{WHY} offers no STARTTLS"),
        (True, "*.mail.example.org", "4.7.5", f"{WHY} is not an MX host the policy allows"),
    ],
    ids=["no-starttls", "mx-not-in-policy"],
)
async def test_enforce_sends_nothing_and_the_mail_waits(
    tmp_path: Path, dns_server: Any, scene: Scene, tls: bool, mx: str, status: str, reason: str
) -> None:
    scene.https.serve(policy("enforce", mx))
    sink = await scene.sink(tls=tls)
    heard: list[str] = []
    sink.mail_reply = heard.append
    try:
        config = await sts_node(tmp_path, dns_server, scene, sink)
        async with running_node(config) as node:
            queue_id = await relay_one(config)
            msg = await first_attempt(node, queue_id)
            assert msg.state == QueueState.DEFERRED
            assert msg.last_error.startswith(reason), msg.last_error
            assert count(node, "ugem_mta_sts_failures_total", mode="enforce") == 1
        assert heard == [] and sink.messages == []
        assert sink.connections == (0 if tls else 1)  # a host outside the policy: not even that
    finally:
        await sink.stop()


async def test_testing_mode_delivers_in_clear_and_reports_what_would_have_failed(
    tmp_path: Path, dns_server: Any, scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="relay.deliver.transaction")
    scene.https.serve(policy("testing"))
    sink = await scene.sink(tls=False)
    try:
        config = await sts_node(tmp_path, dns_server, scene, sink)
        async with running_node(config) as node:
            queue_id = await relay_one(config)
            got = (await sink.wait_for(1))[0]
            await eventually(
                lambda: count(node, "ugem_mta_sts_failures_total", mode="testing") == 1,
                10,
                "the report",
            )
        assert not got.tls and got.rcpts == ["x@example.org"]
        (report,) = [
            r for r in caplog.records if getattr(r, "event", "") == "mta_sts_testing_failure"
        ]
        fields = getattr(report, "fields", {})
        assert (fields["queue_id"], fields["domain"]) == (queue_id, "example.org")
        assert fields["would_fail"] == f"4.7.4 {WHY} offers no STARTTLS"
    finally:
        await sink.stop()
