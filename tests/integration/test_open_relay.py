"""Scenario: the gateway is never an open relay, whatever the address trick.

Clients bind to loopback addresses to play their roles: 127.0.0.2 is the mail
server of the connected minfin.gov.kz, 127.0.0.4 that of the suspended
akimat.kz, 127.0.0.5 that of the disconnected old.kz, 127.0.0.3 anyone on the
internet. The battery is the issue's list of tricks, each aimed at a
connected domain and at the gateway's own name, plus nmap's
smtp-open-relay list (scripts/smtp-open-relay.nse, 16 MAIL/RCPT pairs). A pair
is relayed only if both MAIL and RCPT get 250; no pair may be. The
legitimate paths (inbound to a connected or suspended organisation, outbound
from a connected server with its own sender) are accepted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import smtplib
from pathlib import Path

import pytest

from relay import replies
from tests.support.clients import message, smtplib_send
from tests.support.connections import plain
from tests.support.smtp_harness import Harness, accept_server
from ugem.core.model import ConnState
from ugem.core.names import canonical_domain

INSIDER, OUTSIDER, SUSPENDED_IP, FORMER_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
CONNS = [
    plain("minfin.gov.kz", INSIDER, domains=("minfin.gov.kz", "mf.kz", "минфин.қаз")),
    dataclasses.replace(plain("akimat.kz", SUSPENDED_IP), state=ConnState.SUSPENDED),
    dataclasses.replace(plain("old.kz", FORMER_IP), state=ConnState.DISCONNECTED),
]
GW = "gw.test"  # the node's hostname


def nmap_pairs(domain: str, srvname: str, ip: str) -> list[tuple[str, str]]:
    """nmap smtp-open-relay.nse's tests, with its defaults antispam / relaytest."""
    frm, to = "antispam", "relaytest"
    lit = f"{frm}@[{ip}]"
    return [
        ("", f"{to}@{domain}"),
        (f"{frm}@{domain}", f"{to}@{domain}"),
        (f"{frm}@{srvname}", f"{to}@{domain}"),
        (lit, f"{to}@{domain}"),
        (lit, f"{to}%{domain}@[{ip}]"),
        (lit, f"{to}%{domain}@{srvname}"),
        (lit, f'"{to}@{domain}"'),
        (lit, f'"{to}%{domain}"'),
        (lit, f"{to}@{domain}@[{ip}]"),
        (lit, f'"{to}@{domain}"@[{ip}]'),
        (lit, f"{to}@{domain}@{srvname}"),
        (lit, f"@[{ip}]:{to}@{domain}"),
        (lit, f"@{srvname}:{to}@{domain}"),
        (lit, f"{domain}!{to}"),
        (lit, f"{domain}!{to}@[{ip}]"),
        (lit, f"{domain}!{to}@{srvname}"),
    ]


def local_part_tricks(gw: str) -> list[str]:
    """Local parts that ask `gw` to route further: refused for every client."""
    return [
        f"victim%gmail.com@{gw}",
        f"victim%gmail.com%{gw}@{gw}",
        f'"victim@gmail.com"@{gw}',
        f'"victim%gmail.com"@{gw}',
        f'"gmail.com!victim"@{gw}',
        f"gmail.com!victim@{gw}",
    ]


def issue_tricks(gw: str) -> list[str]:
    """Recipients that would reach gmail.com (or the gateway itself) if judged naively."""
    return [
        *local_part_tricks(gw),
        f"@{gw}:victim@gmail.com",
        f"@{gw},@mf.kz:victim@gmail.com",
        f"victim@gmail.com@{gw}",
        f"victim@{gw}.gmail.com",
    ]


OTHER_TRICKS = [
    "gmail.com!victim",
    "victim@[127.0.0.1]",
    "victim@[IPv6:::1]",
    "victim@GMAIL.COM",
    "victim@gmail.com.",
    "victim@xn--80ak6aa92e.com",
    "victim@пример.рф",
    "victim@sub.minfin.gov.kz",
    "victim@old.kz",
    "victim@OLD.KZ.",
    "root@gw.test",
    "postmaster",  # no route for the gateway's own postmaster in this scenario
    "postmaster@GW.TEST.",
]

BATTERY = (
    [("antispam@ext.org", to) for to in issue_tricks("minfin.gov.kz") + issue_tricks(GW)]
    + [("antispam@ext.org", to) for to in OTHER_TRICKS]
    + nmap_pairs("nmap.scanme.org", GW, "127.0.0.1")
    + nmap_pairs("gmail.com", "minfin.gov.kz", "127.0.0.1")
)


def relayed(port: int, source: str, sender: str, rcpt: str) -> tuple[int, int]:
    """(MAIL reply code, RCPT reply code or 0 when MAIL was refused) of one attempt."""
    with smtplib.SMTP("127.0.0.1", port, source_address=(source, 0), timeout=10) as client:
        client.command_encoding = "utf-8"
        client.ehlo("relay-tester.example")
        utf8 = " SMTPUTF8" if not (sender + rcpt).isascii() else ""
        mail_code, _ = client.docmd("MAIL", f"FROM:<{sender}>{utf8}")
        if mail_code != 250:
            return mail_code, 0
        rcpt_code, _ = client.docmd("RCPT", f"TO:<{rcpt}>")
        return mail_code, rcpt_code


@pytest.mark.parametrize(("sender", "rcpt"), BATTERY)
@pytest.mark.parametrize("source", [OUTSIDER, FORMER_IP])
async def test_relay_trick_is_refused(tmp_path: Path, source: str, sender: str, rcpt: str) -> None:
    async with accept_server(tmp_path, conns=CONNS) as h:
        mail_code, rcpt_code = await asyncio.to_thread(relayed, h.port, source, sender, rcpt)
    assert mail_code >= 500 or rcpt_code >= 500, (mail_code, rcpt_code)


@pytest.mark.parametrize("rcpt", local_part_tricks("minfin.gov.kz") + local_part_tricks(GW))
async def test_local_part_tricks_are_refused_from_a_connected_server_too(
    tmp_path: Path, rcpt: str
) -> None:
    """A connected server may send anywhere, but never through a routing trick."""
    async with accept_server(tmp_path, conns=CONNS) as h:
        codes = await asyncio.to_thread(relayed, h.port, INSIDER, "clerk@minfin.gov.kz", rcpt)
    assert codes == (250, replies.ROUTING_TRICK.code)


async def send(h: Harness, source: str, sender: str, rcpt: str) -> str:
    sent = await asyncio.to_thread(
        smtplib_send, "127.0.0.1", h.port, sender, [rcpt], message(sender, rcpt), source
    )
    return f"{sent.code} {sent.text}"


INBOUND = [
    ("clerk@minfin.gov.kz", "clerk@minfin.gov.kz"),
    ("Clerk@MINFIN.GOV.KZ", "Clerk@minfin.gov.kz"),
    ("clerk@mf.kz", "clerk@mf.kz"),
    (f"clerk@{canonical_domain('МИНФИН.ҚАЗ')}", f"clerk@{canonical_domain('минфин.қаз')}"),
    ("postmaster@minfin.gov.kz", "postmaster@minfin.gov.kz"),
    ("clerk@akimat.kz", "clerk@akimat.kz"),  # a suspended organisation still gets its mail
]


@pytest.mark.parametrize(("rcpt", "queued_as"), INBOUND)
async def test_inbound_to_a_connected_domain_is_accepted(
    tmp_path: Path, rcpt: str, queued_as: str
) -> None:
    async with accept_server(tmp_path, conns=CONNS) as h:
        assert (await send(h, OUTSIDER, "someone@ext.org", rcpt)).startswith("250 2.0.0 Ok")
    msg = h.intake.messages[0]
    assert (msg.rcpts, msg.connection, msg.client_ip) == ([queued_as], "", OUTSIDER)


@pytest.mark.parametrize("sender", ["clerk@minfin.gov.kz", "clerk@mf.kz", ""])
async def test_outbound_from_a_connected_server_with_its_own_sender(
    tmp_path: Path, sender: str
) -> None:
    async with accept_server(tmp_path, conns=CONNS) as h:
        assert (await send(h, INSIDER, sender, "friend@gmail.com")).startswith("250 2.0.0 Ok")
    msg = h.intake.messages[0]
    assert (msg.sender, msg.rcpts, msg.connection) == (
        sender,
        ["friend@gmail.com"],
        "minfin.gov.kz",
    )


async def test_connected_server_with_a_foreign_sender_is_refused(tmp_path: Path) -> None:
    async with accept_server(tmp_path, conns=CONNS) as h:
        for sender in ("ceo@gmail.com", "clerk@sub.minfin.gov.kz", "clerk@akimat.kz"):
            assert await send(h, INSIDER, sender, "friend@gmail.com") == str(replies.SENDER_DENIED)
        assert h.intake.messages == []


async def test_suspended_server_is_told_to_retry(tmp_path: Path) -> None:
    async with accept_server(tmp_path, conns=CONNS) as h:
        for rcpt in ("friend@gmail.com", "clerk@minfin.gov.kz"):
            assert await send(h, SUSPENDED_IP, "clerk@akimat.kz", rcpt) == str(replies.SUSPENDED)


async def test_disconnected_server_is_an_outsider(tmp_path: Path) -> None:
    async with accept_server(tmp_path, conns=CONNS) as h:
        assert await send(h, FORMER_IP, "clerk@old.kz", "friend@gmail.com") == str(
            replies.RELAY_DENIED
        )
        assert (await send(h, FORMER_IP, "clerk@old.kz", "clerk@minfin.gov.kz")).startswith("250")
    assert h.intake.messages[0].connection == ""


async def test_gateway_postmaster_is_accepted_when_routed(tmp_path: Path) -> None:
    async with accept_server(tmp_path, conns=CONNS, routes={GW: "127.0.0.1:2526"}) as h:
        codes = await asyncio.to_thread(relayed, h.port, OUTSIDER, "someone@ext.org", "Postmaster")
        assert codes == (250, 250)
        assert (await send(h, OUTSIDER, "", "postmaster@gw.test")).startswith("250")
        assert await send(h, OUTSIDER, "", "root@gw.test") == str(replies.NO_LOCAL_MAILBOX)
    assert h.intake.messages[0].rcpts == ["postmaster@gw.test"]
