"""Scenario: the mail the gateway writes itself (notices, bounces) leaves DKIM-signed.

A node whose `[dkim] gateway_domain` gw.test has a key relays for
mdai.gov.kz (no key of its own) and sends to a sink that refuses one
recipient. The bounce (DSN) for that recipient and the alert the operators
get when the connection is suspended never pass SMTP accept, where mail is
signed; both arrive at the sink signed d=gw.test and verify with Perl's
Mail::DKIM, which reads the key record from a private dnsmasq (and fail once
altered). With the key unreadable they arrive unsigned and the failure is
logged at ERROR with the queue id. A notice the `ugem` CLI commits into the
spool is signed too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import dkim
import pytest

from relay import replies
from tests.support.cli import operator
from tests.support.mail_dkim import key_dir, mail_dkim_verify, needs_mail_dkim
from tests.support.node import node_relaying_to, running_node, send_mail
from tests.support.sink import Sink, SinkMessage

GATEWAY, ORG = "gw.test", "mdai.gov.kz"
NOC, NOBODY = "noc@example.org", "nobody@example.org"
REFUSED = "550 5.1.1 No such user"


def lookup(txt: dict[str, str]) -> Any:
    def get(name: bytes, timeout: int = 5) -> bytes:
        return txt[name.decode().rstrip(".")].encode()

    return get


async def bounce_and_alert(
    tmp_path: Path, sink: Sink, break_key: bool = False
) -> tuple[SinkMessage, SinkMessage, dict[str, str]]:
    """The DSN and the suspension alert as they reach the sink, and the key's DNS records."""
    keys, records = key_dir(tmp_path / "keys", GATEWAY, "gw1", False, break_key)
    hop = f"{sink.host}:{sink.port}"
    config, _ = await node_relaying_to(
        tmp_path,
        sink,
        admin={"postmaster": f"postmaster@{GATEWAY}", "operators_address": NOC},
        dkim={"key_dir": str(keys.root), "gateway_domain": GATEWAY},
        delivery={"routes": {"example.org": hop, ORG: hop}},
    )
    sink.rcpt_reply = lambda rcpt: REFUSED if rcpt == NOBODY else None
    async with running_node(config) as node:
        sent = await send_mail(config, f"a@{ORG}", [NOBODY], "127.0.0.2", "To nobody")
        assert sent.code == replies.OK.code, sent
        [dsn] = await sink.wait_for(1)
        assert node.services is not None
        await node.services.connections.suspend(ORG, "a burst of spam", "api:root")
        alert = (await sink.wait_for(2))[1]
    assert (dsn.sender, dsn.rcpts) == ("", [f"a@{ORG}"])
    assert (alert.sender, alert.rcpts) == (f"postmaster@{GATEWAY}", [NOC])
    return dsn, alert, records


@needs_mail_dkim
async def test_the_bounce_and_the_alert_verify_with_mail_dkim(
    tmp_path: Path, sink: Sink, dns_server: Any
) -> None:
    dsn, alert, txt = await bounce_and_alert(tmp_path, sink)
    dns = await dns_server(txt=txt)
    for mail in (dsn, alert):
        assert mail.data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")
        assert dkim.DKIM(mail.data).verify(0, dnsfunc=lookup(txt))
        verdicts, overall = mail_dkim_verify(mail.data, dns)
        assert overall == "pass"
        assert [(v.result, v.domain, v.selector) for v in verdicts] == [("pass", GATEWAY, "gw1")]
    altered = dsn.data.replace(b"Subject: Undelivered", b"Subject: Delivered")
    assert mail_dkim_verify(altered, dns)[1] == "fail"


async def test_a_key_that_cannot_be_read_sends_them_unsigned_and_logs_it(
    tmp_path: Path, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="relay.deliver.dkim_sign"):
        dsn, alert, _ = await bounce_and_alert(tmp_path, sink, break_key=True)
    for mail in (dsn, alert):
        assert b"DKIM-Signature" not in mail.data
    failed = [r.__dict__["fields"] for r in caplog.records if r.getMessage() == "dkim_sign_failed"]
    assert len(failed) == 3  # the original (signed at accept), the DSN, the alert
    assert failed[1]["queue_id"] in dsn.data.decode()  # the DSN's id is in its Message-ID


def test_a_notice_the_cli_queues_is_signed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    keys, txt = key_dir(tmp_path / "keys", GATEWAY, "gw1", False)
    extra = (
        f'[admin]\npostmaster = "postmaster@{GATEWAY}"\n'
        f'[dkim]\nkey_dir = "{keys.root}"\ngateway_domain = "{GATEWAY}"\n'
    )
    ugem = operator(tmp_path, capsys, monkeypatch, extra)
    ugem.ok("connection", "add", ORG, "--org", "Ministry", "--kind", "state-body",
            "--server", "127.0.0.2", "--contact", f"IT <it@{ORG}>")  # fmt: skip
    ugem.ok("connection", "suspend", ORG, "--reason", "a burst of spam")
    [notice] = ugem.spooled()
    assert notice.data is not None and notice.size == len(notice.data)
    sig = dkim.DKIM(notice.data)
    assert sig.verify(0, dnsfunc=lookup(txt)) and sig.domain == GATEWAY.encode()
