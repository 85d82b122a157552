"""Scenario: mail a connected organisation relays out arrives DKIM-signed; inbound mail does not.

A node with a key for mdai.gov.kz in its `[dkim] key_dir` relays a message
from the organisation's server (127.0.0.2) to the sink. The message there
starts with the signatures, then the relay's Received: header, and verifies
with dkimpy and with Perl's Mail::DKIM, which reads the key record from a
private dnsmasq; with the Subject altered it fails. The node signs in its
signing process (`[dkim] sign_processes`), not in a thread. Mail from an internet
server (127.0.0.3) to mdai.gov.kz reaches it unsigned. A key that cannot be
read does not refuse the mail: it is accepted (250), logged at ERROR with its
queue id and delivered unsigned.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import dkim
import pytest

from relay import replies
from tests.support.mail_dkim import key_dir, mail_dkim_verify, needs_mail_dkim
from tests.support.node import node_relaying_to, running_node, send_mail
from tests.support.sink import Sink

DOMAIN = "mdai.gov.kz"


async def relay_one(
    tmp_path: Path, sink: Sink, sender: str, rcpt: str, source: str, break_key: bool = False
) -> tuple[bytes, dict[str, str]]:
    """Relay one message through a node with mdai.gov.kz's keys; its bytes at the sink."""
    keys, records = key_dir(tmp_path / "keys", DOMAIN, "s1", True, break_key)
    hop = f"{sink.host}:{sink.port}"
    config, _ = await node_relaying_to(
        tmp_path,
        sink,
        dkim={"key_dir": str(keys.root)},
        delivery={"routes": {"example.org": hop, DOMAIN: hop}},
    )
    async with running_node(config):
        sent = await send_mail(config, sender, [rcpt], source, "Quarterly report")
        assert sent.code == replies.OK.code, sent
        await sink.wait_for(1)
    return sink.messages[0].data, records


def lookup(txt: dict[str, str]) -> Any:
    def get(name: bytes, timeout: int = 5) -> bytes:
        return txt[name.decode().rstrip(".")].encode()

    return get


@needs_mail_dkim
async def test_outbound_mail_is_signed_and_verifies(
    tmp_path: Path, sink: Sink, dns_server: Any
) -> None:
    data, txt = await relay_one(tmp_path, sink, f"a@{DOMAIN}", "x@example.org", "127.0.0.2")
    lines = data.split(b"\r\n")
    assert lines[0].startswith(b"DKIM-Signature: v=1; a=ed25519-sha256;")
    received = next(i for i, line in enumerate(lines) if line.startswith(b"Received:"))
    assert sum(line.startswith(b"DKIM-Signature:") for line in lines[:received]) == 2
    assert dkim.DKIM(data).verify(1, dnsfunc=lookup(txt))  # the RSA signature
    dns = await dns_server(txt=txt)
    verdicts, overall = mail_dkim_verify(data, dns)
    assert overall == "pass"
    assert [v.result for v in verdicts if v.algorithm == "rsa-sha256"] == ["pass"]
    altered = data.replace(b"Subject: Quarterly report", b"Subject: Quarterly report!")
    verdicts, overall = mail_dkim_verify(altered, dns)
    assert overall == "fail"
    assert [v.result for v in verdicts if v.algorithm == "rsa-sha256"] == ["fail"]


async def test_the_node_signs_in_its_signing_process(
    tmp_path: Path, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="relay.deliver.dkim_sign"):
        data, txt = await relay_one(tmp_path, sink, f"a@{DOMAIN}", "x@example.org", "127.0.0.2")
    signed = [r.__dict__["fields"] for r in caplog.records if r.getMessage() == "dkim_signed"]
    assert [(f["via"], f["signatures"]) for f in signed] == [("process", 2)]
    assert dkim.DKIM(data).verify(1, dnsfunc=lookup(txt))


async def test_inbound_mail_is_not_signed(tmp_path: Path, sink: Sink) -> None:
    data, _ = await relay_one(tmp_path, sink, "b@ext.example", f"y@{DOMAIN}", "127.0.0.3")
    assert data.startswith(b"Received:")
    assert b"DKIM-Signature" not in data


async def test_unreadable_key_sends_the_mail_unsigned(
    tmp_path: Path, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="relay.deliver.dkim_sign"):
        data, _ = await relay_one(
            tmp_path, sink, f"a@{DOMAIN}", "x@example.org", "127.0.0.2", break_key=True
        )
    assert data.startswith(b"Received:") and b"DKIM-Signature" not in data
    failed = [r for r in caplog.records if r.getMessage() == "dkim_sign_failed"]
    assert len(failed) == 1
    assert failed[0].__dict__["fields"]["queue_id"].encode() in data.split(b"\r\n\r\n", 1)[0]
