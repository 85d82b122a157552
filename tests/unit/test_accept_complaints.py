"""relay.accept: mail to `[reputation] fbl_address` is a complaint, kept and never relayed.

From anyone (a stranger, a connected server), to the address in any case of its
local part, under the usual limits (size); it is its own transaction (a second
recipient either way gets 452 4.5.3, which costs the client no bad-command
count); its text, as received, goes to the complaint sink and the client hears
250 with the complaint's number, or 451 4.3.0 when it could not be kept. Left
empty, or without a sink, the address is judged like any other.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from relay import replies
from tests.support.connections import plain
from tests.support.smtp_harness import Harness, RawClient, accept_server, raw_client
from ugem.core.errors import StoreError
from ugem.core.events import Subscription

INSIDER = "127.0.0.2"  # mdai.gov.kz's mail server
STRANGER = "127.0.0.5"
CONN = plain("mdai.gov.kz", INSIDER)
FBL = "fbl@gw.test"
REPORT = b"From: <fbl@isp.test>\r\nSubject: complaint\r\n\r\n..a dot-stuffed line\r\n"


@dataclass
class Kept:
    id: int


@dataclass
class Sink:
    """A complaint sink that keeps (text, client address, sender), or raises `error`."""

    got: list[tuple[bytes, str, str]] = field(default_factory=list)
    error: Exception | None = None

    async def receive(self, text: bytes, client_ip: str, sender: str) -> Kept:
        if self.error is not None:
            raise self.error
        self.got.append((text, client_ip, sender))
        return Kept(len(self.got))


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
async def server(tmp_path: Path, sink: Sink) -> AsyncIterator[Harness]:
    async with accept_server(tmp_path, [CONN], complaints=sink, fbl=FBL) as h:
        yield h


async def complain(client: RawClient, rcpt: str = FBL, sender: str = "fbl@isp.test") -> str:
    """A whole transaction to `rcpt`; the reply to the end of DATA."""
    await client.session()
    assert (await client.command(f"MAIL FROM:<{sender}>\r\n".encode())).line == str(
        replies.SENDER_OK
    )
    assert (await client.command(f"RCPT TO:<{rcpt}>\r\n".encode())).line == str(replies.RCPT_OK)
    assert (await client.command(b"DATA\r\n")).line == str(replies.START_DATA)
    return (await client.command(REPORT + b".\r\n")).line


async def test_a_strangers_complaint_is_kept_not_relayed(server: Harness, sink: Sink) -> None:
    events: Subscription = server.bus.subscribe("test")
    async with raw_client(server.port, STRANGER) as client:
        assert await complain(client) == str(replies.complaint_kept(1))
    async with raw_client(server.port, STRANGER) as client:
        assert await complain(client, "FBL@GW.TEST") == str(replies.complaint_kept(2))
    text = REPORT.replace(b"\r\n..a", b"\r\n.a")  # un-dot-stuffed, nothing added
    assert sink.got == [(text, STRANGER, "fbl@isp.test")] * 2
    assert server.intake.messages == []  # never queued, so never relayed
    assert events.queue.empty()  # no `accepted`: it is not traffic
    assert server.replies("DATA", 250) == 2


async def test_a_connected_server_may_complain_too(server: Harness, sink: Sink) -> None:
    async with raw_client(server.port, INSIDER) as client:
        assert await complain(client, sender="postmaster@mdai.gov.kz") == str(
            replies.complaint_kept(1)
        )
    assert server.intake.messages == []
    assert sink.got[0][1:] == (INSIDER, "postmaster@mdai.gov.kz")


@pytest.mark.parametrize("first", [FBL, "clerk@mdai.gov.kz"])
async def test_the_feedback_address_takes_a_transaction_of_its_own(
    tmp_path: Path, sink: Sink, first: str
) -> None:
    other = "clerk@mdai.gov.kz" if first == FBL else FBL
    async with (
        accept_server(tmp_path, [CONN], complaints=sink, fbl=FBL, max_bad_commands=1) as h,
        raw_client(h.port, STRANGER) as client,
    ):
        await client.session()
        await client.command(b"MAIL FROM:<a@isp.test>\r\n")
        assert (await client.command(f"RCPT TO:<{first}>\r\n".encode())).line == str(
            replies.RCPT_OK
        )
        for _ in range(3):  # over max_bad_commands if it counted
            got = await client.command(f"RCPT TO:<{other}>\r\n".encode())
            assert got.line == str(replies.COMPLAINT_ALONE)
        assert (await client.command(b"DATA\r\n")).line == str(replies.START_DATA)
        await client.command(REPORT + b".\r\n")
    assert (len(sink.got), len(h.intake.messages)) == ((1, 0) if first == FBL else (0, 1))


@pytest.mark.parametrize(
    ("error", "logged", "level"),
    [
        (StoreError("sqlite store x: disk I/O error"), "complaint_not_kept", logging.INFO),
        (RuntimeError("bug"), "complaint_error", logging.ERROR),
    ],
)
async def test_a_complaint_not_kept_is_451(
    server: Harness,
    sink: Sink,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    logged: str,
    level: int,
) -> None:
    sink.error = error
    caplog.set_level(logging.INFO, "relay.accept.commands")
    async with raw_client(server.port, STRANGER) as client:
        assert await complain(client) == str(replies.INTERNAL_ERROR)
    found = [r for r in caplog.records if getattr(r, "event", "") == logged]
    assert [r.levelno for r in found] == [level]
    assert server.intake.messages == []


async def test_the_usual_size_limit_holds(tmp_path: Path, sink: Sink) -> None:
    async with (
        accept_server(tmp_path, [CONN], complaints=sink, fbl=FBL, max_message_size=1024) as h,
        raw_client(h.port, STRANGER) as client,
    ):
        await client.session()
        await client.command(b"MAIL FROM:<a@isp.test>\r\n")
        await client.command(f"RCPT TO:<{FBL}>\r\n".encode())
        await client.command(b"DATA\r\n")
        got = await client.command(b"Subject: x\r\n\r\n" + b"spam spam\r\n" * 200 + b".\r\n")
    assert got.code == replies.MESSAGE_TOO_BIG.code
    assert sink.got == []


async def test_an_address_of_a_connected_domain_is_kept_not_relayed(
    tmp_path: Path, sink: Sink
) -> None:
    fbl = "abuse-fbl@mdai.gov.kz"
    async with (
        accept_server(tmp_path, [CONN], complaints=sink, fbl=fbl) as h,
        raw_client(h.port, STRANGER) as client,
    ):
        assert await complain(client, fbl) == str(replies.complaint_kept(1))
    assert h.intake.messages == []


@pytest.mark.parametrize("with_sink", [False, True])
async def test_left_empty_the_address_is_judged_like_any_other(
    tmp_path: Path, sink: Sink, with_sink: bool
) -> None:
    """No fbl_address (or one but no sink): the gateway has no such mailbox."""
    fbl, complaints = ("", sink) if with_sink else (FBL, None)
    async with (
        accept_server(tmp_path, [CONN], complaints=complaints, fbl=fbl) as h,
        raw_client(h.port, STRANGER) as client,
    ):
        await client.session()
        await client.command(b"MAIL FROM:<a@isp.test>\r\n")
        got = await client.command(f"RCPT TO:<{FBL}>\r\n".encode())
    assert got.line == str(replies.NO_LOCAL_MAILBOX)
