"""Scenario: SMTP smuggling. An end-of-data look-alike never splits one DATA into two messages.

Each look-alike (`\\n.\\n`, `\\r.\\r`, `\\r\\n\\x00.\\r\\n`, ...) is followed, inside
the same DATA, by a whole second transaction forged from a connected domain.
With `normalize_line_endings = false` the message is refused (550 5.6.0);
with `true` it is queued as ONE message whose lines all end in CRLF (NUL is
refused either way), so even a lenient next hop (any lone dot ends its data) sees one message.
In no case does the intake get two messages, and the forged commands are
never answered. Python's raw sockets and swaks (`--no-data-fixup`) send it.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import pytest

from relay import replies
from tests.support.clients import needs_swaks, swaks
from tests.support.connections import plain
from tests.support.smtp_harness import Got, RawClient, accept_server, raw_client

CONN = plain("minfin.gov.kz", "127.0.0.2")
LOOKALIKES = {
    "lf.lf": b"\n.\n",
    "lf.crlf": b"\n.\r\n",
    "crlf.lf": b"\r\n.\n",
    "cr.cr": b"\r.\r",
    "cr.crlf": b"\r.\r\n",
    "crlf.cr": b"\r\n.\r",
    "lf.cr": b"\n.\r",
    "crlf.cr-crlf": b"\r\n.\r\r\n",
    "crlf.lf-crlf": b"\r\n.\n\r\n",
    "crlf-nul.crlf": b"\r\n\x00.\r\n",
    "crlf.nul-crlf": b"\r\n.\x00\r\n",
}
FORGED = (
    b"MAIL FROM:<ceo@minfin.gov.kz>\r\n"
    b"RCPT TO:<accountant@minfin.gov.kz>\r\n"
    b"DATA\r\n"
    b"From: <ceo@minfin.gov.kz>\r\nSubject: smuggled\r\n\r\nPay the invoice.\r\n"
)
FIRST = b"From: <someone@ext.org>\r\nSubject: first\r\n\r\nHello"


async def smuggle(c: RawClient, lookalike: bytes) -> tuple[Got, Got]:
    """One DATA holding the look-alike and a forged transaction; (its reply, QUIT's reply)."""
    await c.session()
    await c.send(b"MAIL FROM:<someone@ext.org>\r\nRCPT TO:<clerk@minfin.gov.kz>\r\nDATA\r\n")
    assert [g.code for g in await c.replies(3)] == [250, 250, 354]
    await c.send(FIRST + lookalike + FORGED + b".\r\nQUIT\r\n")
    return await c.reply(), await c.reply()


# A lenient next hop: takes any lone dot between any line endings as the end of data.
LENIENT_END = re.compile(rb"(?:\r\n|\n|\r)\.(?:\r\n|\n|\r)")


def lenient_next_hop_count(text: bytes) -> int:
    """Messages a lenient next hop sees when `text` is sent dot-stuffed by CRLF lines."""
    wire = (b"\r\n" + text).replace(b"\r\n.", b"\r\n..") + b".\r\n"
    return len(LENIENT_END.findall(wire))


def test_the_lenient_next_hop_would_see_a_smuggled_message() -> None:
    """The check used below notices two messages where a look-alike passes through."""
    assert lenient_next_hop_count(b"Hello\r\n.\r\nstill one\r\n") == 1
    assert lenient_next_hop_count(b"Hello\n.\n" + FORGED) == 2
    assert lenient_next_hop_count(b"Hello\r.\r" + FORGED) == 2


@pytest.mark.parametrize("lookalike", LOOKALIKES.values(), ids=LOOKALIKES.keys())
async def test_lookalike_is_refused_when_not_normalising(tmp_path: Path, lookalike: bytes) -> None:
    async with accept_server(tmp_path, conns=[CONN]) as h, raw_client(h.port) as c:
        data_reply, quit_reply = await smuggle(c, lookalike)
    assert data_reply.line == str(replies.BAD_LINE_ENDINGS)
    assert quit_reply.line == str(replies.BYE)  # the forged commands got no reply
    assert h.intake.messages == []


@pytest.mark.parametrize("lookalike", LOOKALIKES.values(), ids=LOOKALIKES.keys())
async def test_lookalike_normalised_is_one_message(tmp_path: Path, lookalike: bytes) -> None:
    async with (
        accept_server(tmp_path, conns=[CONN], normalize_line_endings=True) as h,
        raw_client(h.port) as c,
    ):
        data_reply, quit_reply = await smuggle(c, lookalike)
    assert quit_reply.line == str(replies.BYE)
    if b"\x00" in lookalike:
        assert data_reply.line == str(replies.BAD_LINE_ENDINGS)
        assert h.intake.messages == []
        return
    (msg,) = h.intake.messages
    assert data_reply.line == str(replies.queued(msg.id))
    text = msg.data or b""
    assert b"Subject: smuggled" in text and text.endswith(b"Pay the invoice.\r\n")
    assert text.count(b"\r") == text.count(b"\n") == text.count(b"\r\n")
    assert lenient_next_hop_count(text) == 1


def send_with_swaks(port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return swaks("127.0.0.1", port, "someone@ext.org", "clerk@minfin.gov.kz", "127.0.0.1", *extra)


@needs_swaks
async def test_swaks_plain_message_is_accepted(tmp_path: Path) -> None:
    async with accept_server(tmp_path, conns=[CONN]) as h:
        done = await asyncio.to_thread(send_with_swaks, h.port)
    assert done.returncode == 0, done.stdout
    assert len(h.intake.messages) == 1
    assert "250 2.0.0 Ok: queued as " + h.intake.messages[0].id in done.stdout


@needs_swaks
@pytest.mark.parametrize("normalize", [False, True])
async def test_swaks_smuggling_attempt(tmp_path: Path, normalize: bool) -> None:
    data = tmp_path / "smuggle.eml"
    data.write_bytes(FIRST + b"\n.\n" + FORGED + b".")  # swaks adds the final CRLF
    async with accept_server(tmp_path, conns=[CONN], normalize_line_endings=normalize) as h:
        done = await asyncio.to_thread(
            send_with_swaks, h.port, "--data", f"@{data}", "--no-data-fixup"
        )
    assert "221 2.0.0 Bye" in done.stdout, done.stdout
    if normalize:
        assert done.returncode == 0, done.stdout
        assert len(h.intake.messages) == 1
    else:
        assert done.returncode != 0
        assert str(replies.BAD_LINE_ENDINGS) in done.stdout
        assert h.intake.messages == []
