"""Scenario: mail from the internet to a connected domain is checked (SPF, DKIM, DMARC) over SMTP.

A node (hostname gw.test, the authserv-id) reads its DNS from a private
dnsmasq that serves bank.kz (SPF allows 127.0.0.7, DMARC p=reject, a DKIM
key) and lax.kz (same SPF, DMARC p=none). mdai.gov.kz is connected; its
server (a sink on 127.0.0.5) receives the inbound mail. Internet servers are
played by smtplib bound to 127.0.0.7 (allowed by SPF) and 127.0.0.8 (not).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relay import replies
from relay.deliver.dkim_sign import DkimSigner
from tests.support.clients import Sent, message, smtplib_send
from tests.support.node import connect, node_config, running_node, smtp_address
from tests.support.sink import Sink
from ugem.core.clock import SystemClock
from ugem.core.config import Config
from ugem.core.dkim_keys import KeyStore, dns_records

ALLOWED, OTHER, ORG_SERVER = "127.0.0.7", "127.0.0.8", "127.0.0.5"
SPF = "v=spf1 ip4:127.0.0.7 -all"
RCPT = "clerk@mdai.gov.kz"


@pytest.fixture
async def org_server() -> AsyncIterator[Sink]:
    sink = await Sink.start(ORG_SERVER, 0)
    yield sink
    await sink.stop()


@pytest.fixture
async def config(tmp_path: Path, dns_server: Any, org_server: Sink) -> Config:
    keys = KeyStore(tmp_path / "sender-keys").keygen("bank.kz", "s1", with_ed25519=False)
    dns = await dns_server(
        txt={
            "bank.kz": SPF,
            "_dmarc.bank.kz": "v=DMARC1; p=reject",
            "lax.kz": SPF,
            "_dmarc.lax.kz": "v=DMARC1; p=none",
            **dict(dns_records(keys)),
        }
    )
    route = f"{org_server.host}:{org_server.port}"
    config, _ = node_config(
        tmp_path,
        delivery={
            "dns_servers": [dns.address],
            "smtp_port": org_server.port,
            "routes": {"example.org": route},
        },
        auth={"timeout": 10.0},
    )
    await connect(config, "mdai.gov.kz", [ORG_SERVER])
    return config


async def send(config: Config, sender: str, data: bytes, source: str) -> Sent:
    host, port = smtp_address(config)
    return await asyncio.to_thread(smtplib_send, host, port, sender, [RCPT], data, source)


def header(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[0]


async def test_aligned_pass_is_delivered_with_our_results_and_forgeries_stripped(
    config: Config, org_server: Sink
) -> None:
    forged = b"Authentication-Results: GW.TEST; dmarc=pass header.from=bank.kz\r\n"
    theirs = b"Authentication-Results: mx.upstream.example; spf=pass\r\n"
    data = forged + theirs + message("boss@bank.kz", RCPT, "aligned")
    async with running_node(config):
        sent = await send(config, "bounce@bank.kz", data, ALLOWED)
        assert sent.ok, sent
        await org_server.wait_for(1)
    got = header(org_server.messages[0].data)
    lines = got.split(b"\r\n")
    assert lines[0].startswith(b"Received: from client.test ([127.0.0.7])")
    ours = got[got.index(b"Authentication-Results: gw.test;") :]
    assert ours.startswith(
        b"Authentication-Results: gw.test;\r\n"
        b"\tspf=pass smtp.mailfrom=bounce@bank.kz;\r\n"
        b"\tdkim=none;\r\n"
        b"\tdmarc=pass (p=reject dis=none) header.from=bank.kz\r\n"
    )
    assert forged.rstrip() not in got
    assert theirs.rstrip() in got


async def test_p_reject_failure_is_refused_with_550_5_7_1(config: Config, org_server: Sink) -> None:
    async with running_node(config):
        sent = await send(config, "boss@bank.kz", message("boss@bank.kz", RCPT), OTHER)
    assert (sent.code, sent.text) == (replies.DMARC_REJECT.code, str(replies.DMARC_REJECT)[4:])
    assert org_server.messages == []


async def test_p_none_failure_is_delivered_tagged(config: Config, org_server: Sink) -> None:
    async with running_node(config):
        sent = await send(config, "boss@lax.kz", message("boss@lax.kz", RCPT), OTHER)
        assert sent.ok, sent
        await org_server.wait_for(1)
    got = header(org_server.messages[0].data)
    assert b"\tspf=fail smtp.mailfrom=boss@lax.kz;\r\n" in got
    assert b"\tdmarc=fail (p=none dis=none) header.from=lax.kz\r\n" in got
    assert b"X-UGEM-Quarantine" not in got


async def test_dkim_signed_mail_passes_dmarc_from_an_unlisted_host(
    tmp_path: Path, config: Config, org_server: Sink
) -> None:
    signer = DkimSigner(KeyStore(tmp_path / "sender-keys"), "", SystemClock())
    text = message("boss@bank.kz", RCPT, "signed")
    data = signer.sign(text, ["bank.kz"], "bank.kz") + text
    async with running_node(config):
        sent = await send(config, "boss@bank.kz", data, OTHER)
        assert sent.ok, sent
        await org_server.wait_for(1)
    got = header(org_server.messages[0].data)
    assert b"\tspf=fail smtp.mailfrom=boss@bank.kz;\r\n" in got
    assert b"\tdkim=pass header.d=bank.kz header.s=s1;\r\n" in got
    assert b"\tdmarc=pass (p=reject dis=none) header.from=bank.kz\r\n" in got


async def test_mail_from_a_connected_server_is_not_checked(
    config: Config, org_server: Sink
) -> None:
    text = message("a@mdai.gov.kz", "x@example.org")
    host, port = smtp_address(config)
    async with running_node(config):
        sent = await asyncio.to_thread(
            smtplib_send, host, port, "a@mdai.gov.kz", ["x@example.org"], text, ORG_SERVER
        )
        assert sent.ok, sent
        await org_server.wait_for(1)
    assert b"Authentication-Results" not in org_server.messages[0].data
