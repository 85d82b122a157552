"""relay.accept.listener on loopback sockets: limits, framing, pipelining, TLS, failures, stop.

Clients are Python's smtplib (run in a thread) and a raw byte client for what
smtplib will not send. Timeouts are configured small (0.2-0.3 s) and the tests
wait for the server's own timeout to fire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import smtplib
import socket
import struct
from pathlib import Path
from typing import Any

import pytest

from relay import replies
from relay.accept.listener import load_tls
from relay.accept.received import safe_helo
from relay.accept.refusals import why
from relay.queue.message import QUEUE_ID_LENGTH
from tests.support.connections import plain
from tests.support.smtp_harness import Harness, RawClient, accept_server, raw_client
from tests.support.tls_cert import client_context, self_signed
from tests.support.waiting import eventually
from ugem.core.errors import ConfigError, SpoolError, SpoolFullError, StoreError
from ugem.core.events import Accepted, Refused
from ugem.core.model import ConnState
from ugem.core.names import canonical_domain

INSIDER = "127.0.0.2"  # the mail server of minfin.gov.kz
CONN = plain("minfin.gov.kz", INSIDER)
RCPT = b"RCPT TO:<clerk@minfin.gov.kz>\r\n"
MAIL = b"MAIL FROM:<someone@ext.org>\r\n"
BODY = b"Subject: test\r\n\r\nHello.\r\n"


async def open_transaction(client: RawClient) -> None:
    """Greeting, EHLO, MAIL and RCPT of an inbound message; each must succeed."""
    await client.session()
    assert (await client.command(MAIL)).line == str(replies.SENDER_OK)
    assert (await client.command(RCPT)).line == str(replies.RCPT_OK)


async def send_message(client: RawClient, body: bytes = BODY) -> str:
    """DATA with `body` (already CRLF and dot-stuffed); the final reply line."""
    assert (await client.command(b"DATA\r\n")).line == str(replies.START_DATA)
    return (await client.command(body + b".\r\n")).line


def smtplib_session(port: int, source: str = "127.0.0.1") -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", port, source_address=(source, 0), timeout=10)


# -- EHLO and the reply format -----------------------------------------------------------


async def test_ehlo_advertises_extensions_but_not_chunking_starttls_or_auth(
    tmp_path: Path,
) -> None:
    async with accept_server(tmp_path, max_message_size=5000) as h:

        def ehlo() -> dict[str, str]:
            with smtplib_session(h.port) as client:
                code, _ = client.ehlo("client.test")
                assert code == 250
                return dict(client.esmtp_features)

        features = await asyncio.to_thread(ehlo)
    assert features.pop("size") == "5000"
    assert set(features) == {"8bitmime", "smtputf8", "pipelining", "enhancedstatuscodes"}


ENHANCED = re.compile(r"^\d{3} [245]\.\d{1,3}\.\d{1,3} ")


async def test_every_reply_but_greeting_and_helo_has_an_enhanced_status_code(
    tmp_path: Path,
) -> None:
    async with accept_server(tmp_path, conns=[CONN]) as h, raw_client(h.port) as c:
        greeting = await c.reply()
        assert greeting.line == str(replies.greeting("gw.test"))
        assert (await c.command(b"HELO client.test\r\n")).line == "250 gw.test"
        got = [
            await c.command(line)
            for line in (
                b"NOOP\r\n",
                b"HELP\r\n",
                b"VRFY clerk\r\n",
                b"RSET\r\n",
                b"FOO\r\n",
                b"EXPN x\r\n",
                b"RCPT TO:<a@b.org>\r\n",
                MAIL,
                b"RCPT TO:<victim@gmail.com>\r\n",
                RCPT,
                b"DATA\r\n",
                BODY + b".\r\n",
                b"QUIT\r\n",
            )
        ]
    lines = [g.line for g in got if g.code != 354]
    assert all(ENHANCED.match(line) for line in lines), lines


# -- size, recipients and line limits ----------------------------------------------------


async def test_size_parameter_over_the_limit_is_refused_before_any_data(tmp_path: Path) -> None:
    async with accept_server(tmp_path, max_message_size=2048) as h, raw_client(h.port) as c:
        await c.session()
        over = await c.command(b"MAIL FROM:<a@ext.org> SIZE=2049\r\n")
        assert over.line == str(replies.size_exceeded(2048))
        assert (await c.command(b"MAIL FROM:<a@ext.org> SIZE=2048\r\n")).code == 250


async def test_message_over_the_limit_is_refused_and_the_session_goes_on(tmp_path: Path) -> None:
    async with accept_server(tmp_path, conns=[CONN], max_message_size=1024) as h:
        async with raw_client(h.port) as c:
            await open_transaction(c)
            assert await send_message(c, b"x" * 900 + b"\r\n" + b"y" * 900 + b"\r\n") == str(
                replies.size_exceeded(1024)
            )
            assert (await c.command(b"NOOP\r\n")).line == str(replies.NOOP_OK)
            assert (await c.command(MAIL)).code == 250  # the transaction was reset
        assert h.intake.messages == []


async def test_recipients_beyond_the_limit_get_452(tmp_path: Path) -> None:
    async with accept_server(tmp_path, conns=[CONN], max_recipients=100) as h:
        async with raw_client(h.port) as c:
            await c.session()
            rcpts = b"".join(b"RCPT TO:<u%d@minfin.gov.kz>\r\n" % i for i in range(101))
            await c.send(MAIL + rcpts)
            got = await c.replies(102)
            assert [g.code for g in got[:101]] == [250] * 101
            assert got[101].line == str(replies.TOO_MANY_RECIPIENTS)
            assert (await send_message(c)).startswith("250 2.0.0 Ok: queued as ")
        assert len(h.intake.messages[0].rcpts) == 100


async def test_command_line_limit(tmp_path: Path) -> None:
    async with accept_server(tmp_path, conns=[CONN]) as h, raw_client(h.port) as c:
        await c.session()
        too_long = await c.command(b"NOOP " + b"x" * 510 + b"\r\n")
        assert too_long.line == str(replies.COMMAND_TOO_LONG)
        huge = await c.command(b"NOOP " + b"x" * 100_000 + b"\r\n")
        assert huge.line == str(replies.COMMAND_TOO_LONG)
        # MAIL gets room for its parameters beyond the 512 octets
        long_mail = b"MAIL FROM:<" + b"a" * 64 + b"@" + b"b" * 63 + b"." + b"c" * 63 + b"."
        long_mail += b"d" * 63 + b".org> BODY=8BITMIME SMTPUTF8 SIZE=1000 " + b" " * 210 + b"\r\n"
        assert 512 < len(long_mail) <= 512 + 64
        assert (await c.command(long_mail)).code == 250


async def test_text_line_limit_counts_crlf(tmp_path: Path) -> None:
    async with accept_server(tmp_path, conns=[CONN]) as h:
        async with raw_client(h.port) as c:
            await open_transaction(c)
            longest = b"x" * 998 + b"\r\n"
            assert (await send_message(c, longest + b"x" + longest)) == str(replies.LINE_TOO_LONG)
            assert (await c.command(MAIL + RCPT)).code == 250
            assert (await c.reply()).code == 250
            assert (await send_message(c, longest)).startswith("250 ")
        assert (h.intake.messages[0].data or b"").endswith(b"+0000\r\n" + longest)


# -- framing: bare CR, bare LF, NUL; pipelining ------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"NOOP\n",
        b"NOOP\rRSET\r\n",
        b"NO\x00OP\r\n",
        b"MAIL FROM:<a@ext.org>\n",
        b"RCPT TO:<a@minfin.gov.kz>\rRCPT TO:<victim@gmail.com>\r\n",
    ],
)
async def test_command_with_bare_cr_bare_lf_or_nul_is_refused(tmp_path: Path, line: bytes) -> None:
    async with accept_server(tmp_path, conns=[CONN]) as h, raw_client(h.port) as c:
        await c.session()
        assert (await c.command(line)).line == str(replies.BAD_COMMAND_CHARS)
        assert (await c.command(b"RCPT TO:<a@minfin.gov.kz>\r\n")).line == str(replies.NEED_MAIL)


async def test_pipelined_transaction_and_commands_after_the_final_dot(tmp_path: Path) -> None:
    async with accept_server(tmp_path, conns=[CONN]) as h:
        async with raw_client(h.port) as c:
            await c.reply()
            await c.send(
                b"EHLO client.test\r\n"
                + MAIL
                + RCPT
                + b"RCPT TO:<b@minfin.gov.kz>\r\n"
                + b"DATA\r\n"
            )
            got = await c.replies(5)
            assert [g.code for g in got] == [250, 250, 250, 250, 354]
            await c.send(BODY + b".\r\n" + MAIL + RCPT + b"DATA\r\n")
            got = await c.replies(4)
            assert [g.code for g in got] == [250, 250, 250, 354]
            await c.send(b"Subject: two\r\n\r\n.\r\nQUIT\r\n")
            assert (await c.reply()).code == 250
            assert (await c.reply()).line == str(replies.BYE)
        assert [m.rcpts for m in h.intake.messages] == [
            ["clerk@minfin.gov.kz", "b@minfin.gov.kz"],
            ["clerk@minfin.gov.kz"],
        ]


async def test_pipelined_commands_before_eof_are_all_answered(tmp_path: Path) -> None:
    async with accept_server(tmp_path, conns=[CONN]) as h, raw_client(h.port) as c:
        await c.reply()
        await c.send(b"EHLO client.test\r\nNOOP\r\nQUIT\r\n")
        c.writer.write_eof()
        got = await c.replies(3)
        assert got[2].line == str(replies.BYE)
        assert await c.closed()


# -- timeouts and caps -------------------------------------------------------------------


async def test_idle_client_gets_421_after_the_command_timeout(tmp_path: Path) -> None:
    async with accept_server(tmp_path, command_timeout=0.2) as h, raw_client(h.port) as c:
        await c.session()
        assert (await c.reply(timeout=5)).line == str(replies.TIMEOUT)
        assert await c.closed()
        await eventually(lambda: h.server.session_count() == 0, 5, "session released")


async def test_data_timeout_bounds_the_whole_data_even_while_trickling(tmp_path: Path) -> None:
    async with accept_server(tmp_path, conns=[CONN], data_timeout=0.3) as h:
        async with raw_client(h.port) as c:
            await open_transaction(c)
            assert (await c.command(b"DATA\r\n")).code == 354
            reply = asyncio.create_task(c.reply(timeout=5))
            while not reply.done():  # a byte every 20 ms: each read is quick, the whole is not
                with contextlib.suppress(ConnectionError):
                    await c.send(b"x")
                await asyncio.sleep(0.02)
            assert reply.result().line == str(replies.TIMEOUT)
        assert h.intake.messages == []


async def test_unknown_and_malformed_commands_are_capped(tmp_path: Path) -> None:
    async with accept_server(tmp_path, max_bad_commands=3) as h, raw_client(h.port) as c:
        await c.session()
        assert (await c.command(b"FOO\r\n")).line == str(replies.UNKNOWN_COMMAND)
        assert (await c.command(b"NOOP\n")).line == str(replies.BAD_COMMAND_CHARS)
        assert (await c.command(b"MAIL FROM:nobrackets\r\n")).line == str(replies.BAD_SENDER_SYNTAX)
        assert (await c.command(b"BDAT 10 LAST\r\n")).line == str(replies.TOO_MANY_BAD)
        assert await c.closed()


async def test_noop_like_commands_are_capped_but_the_count_restarts_per_message(
    tmp_path: Path,
) -> None:
    async with (
        accept_server(tmp_path, conns=[CONN], max_noop_commands=3) as h,
        raw_client(h.port) as c,
    ):
        await open_transaction(c)
        for line in (b"NOOP\r\n", b"VRFY x\r\n", b"HELP\r\n"):
            assert (await c.command(line)).code in (214, 250, 252)
        assert (await send_message(c)).startswith("250 ")
        for line in (b"NOOP\r\n", b"RSET\r\n", b"NOOP\r\n"):
            assert (await c.command(line)).code == 250
        assert (await c.command(b"NOOP\r\n")).line == str(replies.TOO_MANY_NOOPS)
        assert await c.closed()


async def test_connection_caps_per_address_and_in_total(tmp_path: Path) -> None:
    caps: dict[str, Any] = {"max_connections": 4, "max_connections_per_ip": 2, "reserved_share": 0}
    async with accept_server(tmp_path, **caps) as h, contextlib.AsyncExitStack() as stack:
        admitted = [
            await stack.enter_async_context(raw_client(h.port, source))
            for source in ("127.0.0.1", "127.0.0.1", "127.0.0.3")
        ]
        for client in admitted:
            assert (await client.reply()).code == 220
        async with raw_client(h.port) as third_from_one_address:
            assert (await third_from_one_address.reply()).line == str(replies.TOO_MANY_FROM_IP)
            assert await third_from_one_address.closed()
        fourth = await stack.enter_async_context(raw_client(h.port, "127.0.0.4"))
        assert (await fourth.reply()).code == 220
        async with raw_client(h.port, source="127.0.0.5") as fifth:
            assert (await fifth.reply()).line == str(replies.TOO_MANY_CONNECTIONS)
            assert await fifth.closed()
        assert h.server.session_count() == 4
        await admitted[0].close()
        await eventually(lambda: h.server.session_count() == 3, 5, "first released")
        async with raw_client(h.port) as again:
            assert (await again.reply()).code == 220


# -- the envelope: sequence, parameters, policy -------------------------------------------

SEQUENCE = [
    ([MAIL], replies.NEED_HELO),
    ([b"EHLO x\r\n", RCPT], replies.NEED_MAIL),
    ([b"EHLO x\r\n", b"DATA\r\n"], replies.NEED_MAIL),
    ([b"EHLO x\r\n", MAIL, b"DATA\r\n"], replies.NEED_RCPT),
    ([b"EHLO x\r\n", MAIL, b"RCPT TO:<v@gmail.com>\r\n", b"DATA\r\n"], replies.NO_VALID_RCPTS),
    ([b"EHLO x\r\n", MAIL, MAIL], replies.NESTED_MAIL),
    ([b"EHLO x\r\n", MAIL, RCPT, b"DATA now\r\n"], replies.SYNTAX_ERROR),
    ([b"EHLO\r\n"], replies.SYNTAX_ERROR),
    ([b"HELO x\r\n", b"MAIL FROM:<a@ext.org> SIZE=10\r\n"], replies.SYNTAX_ERROR),
    ([b"EHLO x\r\n", b"MAIL FROM:<a@ext.org> SIZE=ten\r\n"], replies.PARAM_VALUE_BAD),
    ([b"EHLO x\r\n", b"MAIL FROM:<a@ext.org> BODY=BINARYMIME\r\n"], replies.PARAM_VALUE_BAD),
    ([b"EHLO x\r\n", b"MAIL FROM:<a@ext.org> SMTPUTF8=yes\r\n"], replies.PARAM_VALUE_BAD),
    ([b"EHLO x\r\n", b"MAIL FROM:<a@ext.org> RET=FULL\r\n"], replies.PARAM_UNKNOWN),
    (
        [b"EHLO x\r\n", MAIL, b"RCPT TO:<clerk@minfin.gov.kz> NOTIFY=NEVER\r\n"],
        replies.PARAM_UNKNOWN,
    ),
    ([b"EHLO x\r\n", MAIL, b"RCPT TO:<>\r\n"], replies.BAD_RCPT_SYNTAX),
    ([b"EHLO x\r\n", b"MAIL FROM:<\xc3\xbc@ext.org>\r\n"], replies.NEEDS_SMTPUTF8),
    ([b"EHLO x\r\n", b"MAIL FROM:<\xff@ext.org>\r\n"], replies.SYNTAX_ERROR),
    ([b"EHLO x\r\n", b"AUTH PLAIN AGFAYg==\r\n"], replies.NOT_IMPLEMENTED),
    ([b"EHLO x\r\n", b"STARTTLS\r\n"], replies.NOT_IMPLEMENTED),  # no certificate configured
]


@pytest.mark.parametrize(("lines", "expected"), SEQUENCE)
async def test_command_sequence_and_parameters(
    tmp_path: Path, lines: list[bytes], expected: replies.Reply
) -> None:
    async with accept_server(tmp_path, conns=[CONN]) as h, raw_client(h.port) as c:
        await c.reply()
        for line in lines[:-1]:
            assert (await c.command(line)).code in (250, 554)
        assert (await c.command(lines[-1])).line == str(expected)


async def test_null_sender_and_utf8_addresses_are_accepted(tmp_path: Path) -> None:
    utf8_conn = plain("минфин.қаз", INSIDER)
    async with accept_server(tmp_path, conns=[utf8_conn]) as h:
        async with raw_client(h.port) as c:
            await c.session()
            mail = b"MAIL FROM:<> SMTPUTF8\r\n"
            assert (await c.command(mail)).code == 250
            rcpt = "RCPT TO:<қызметкер@МИНФИН.ҚАЗ>\r\n".encode()
            assert (await c.command(rcpt)).code == 250
            assert (await send_message(c)).startswith("250 ")
        msg = h.intake.messages[0]
        assert (msg.sender, msg.rcpts) == ("", ["қызметкер@" + canonical_domain("минфин.қаз")])
        assert b" with UTF8SMTP id " in (msg.data or b"")


async def test_suspended_client_gets_451_and_a_store_change_counts_at_the_next_mail(
    tmp_path: Path,
) -> None:
    async with accept_server(tmp_path, conns=[CONN]) as h, raw_client(h.port, source=INSIDER) as c:
        await c.session()
        assert (await c.command(b"MAIL FROM:<clerk@minfin.gov.kz>\r\n")).code == 250
        assert (await c.command(b"RSET\r\n")).code == 250
        await h.set_state("minfin.gov.kz", ConnState.SUSPENDED)
        suspended = await c.command(b"MAIL FROM:<clerk@minfin.gov.kz>\r\n")
        assert suspended.line == str(replies.SUSPENDED)
        await h.set_state("minfin.gov.kz", ConnState.CONNECTED)
        assert (await c.command(b"MAIL FROM:<clerk@minfin.gov.kz>\r\n")).code == 250


async def test_outbound_mail_carries_the_connection_id(tmp_path: Path) -> None:
    async with accept_server(tmp_path, conns=[CONN]) as h:
        async with raw_client(h.port, source=INSIDER) as c:
            await c.session()
            assert (await c.command(b"MAIL FROM:<clerk@minfin.gov.kz>\r\n")).code == 250
            assert (await c.command(b"RCPT TO:<friend@gmail.com>\r\n")).code == 250
            assert (await send_message(c)).startswith("250 ")
        msg = h.intake.messages[0]
        assert (msg.connection, msg.client_ip, msg.original_rcpts) == (
            "minfin.gov.kz",
            INSIDER,
            ["friend@gmail.com"],
        )


# -- failures: never a 5xx, never a traceback --------------------------------------------


async def test_internal_error_is_451_without_details_and_logged_with_the_queue_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with accept_server(tmp_path, conns=[CONN]) as h, raw_client(h.port) as c:
        h.intake.error = RuntimeError("secret detail: disk on fire")
        await open_transaction(c)
        with caplog.at_level(logging.ERROR, logger="relay.accept"):
            assert await send_message(c) == str(replies.INTERNAL_ERROR)
        assert (await c.command(b"NOOP\r\n")).code == 250  # the session goes on
    records = [r for r in caplog.records if getattr(r, "event", "") == "accept_internal_error"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    queue_id = records[0].fields["queue_id"]  # type: ignore[attr-defined]
    assert len(queue_id) == QUEUE_ID_LENGTH


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (SpoolFullError("disk full"), replies.SPOOL_FULL),
        (SpoolError("fsync failed"), replies.INTERNAL_ERROR),
    ],
)
async def test_spool_errors_map_to_4xx(
    tmp_path: Path, error: Exception, expected: replies.Reply
) -> None:
    async with accept_server(tmp_path, conns=[CONN]) as h, raw_client(h.port) as c:
        h.intake.error = error
        await open_transaction(c)
        assert await send_message(c) == str(expected)


async def _broken_store() -> None:
    raise StoreError("sqlite store: database is locked")


async def test_store_failure_at_mail_answers_from_the_last_view(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Fail-static: the registry's last view serves, one WARNING, no traceback."""
    async with accept_server(tmp_path, conns=[CONN]) as h, raw_client(h.port) as c:
        await h.registry.sync()  # the view a node holds once started
        monkeypatch.setattr(h.registry, "sync", _broken_store)
        await c.session()
        for _ in range(3):  # MAIL, and RCPT to the connected domain: 250
            assert (await c.command(MAIL)).line == str(replies.SENDER_OK)
            assert (await c.command(RCPT)).line == str(replies.RCPT_OK)
            assert (await c.command(b"RSET\r\n")).line == str(replies.RESET_OK)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["store_unreachable"]
    assert not [r for r in caplog.records if r.exc_info]


async def test_no_view_or_one_too_old_is_451_at_mail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def mail(h: Harness) -> str:
        async with raw_client(h.port) as c:  # a new session: the clock moves by hours
            await c.session()
            return (await c.command(MAIL)).line

    async with accept_server(tmp_path, conns=[CONN]) as h:
        monkeypatch.setattr(h.registry, "sync", _broken_store)
        # the store failed before the registry read anything: nothing to relay on
        assert await mail(h) == str(replies.REGISTRY_UNAVAILABLE)
        monkeypatch.undo()
        h.clock.advance(h.registry.watch.freshness.probe_interval)
        await h.registry.watch.probe()  # the store is back: the view is read
        assert await mail(h) == str(replies.SENDER_OK)
        monkeypatch.setattr(h.registry, "sync", _broken_store)
        h.clock.advance(h.registry.watch.freshness.max_stale)
        assert await mail(h) == str(replies.SENDER_OK)  # down, the view just within the bound
        h.clock.advance(1)
        assert await mail(h) == str(replies.REGISTRY_UNAVAILABLE)


async def test_backlog_over_the_limit_is_451_at_mail(tmp_path: Path) -> None:
    async with (
        accept_server(tmp_path, conns=[CONN], max_queue_backlog=100) as h,
        raw_client(h.port) as c,
    ):
        await c.session()
        h.intake.waiting = 101
        assert (await c.command(MAIL)).line == str(replies.QUEUE_BACKLOG)
        h.intake.waiting = 100
        assert (await c.command(MAIL)).code == 250


async def test_client_gone_mid_data_queues_nothing(tmp_path: Path) -> None:
    async with accept_server(tmp_path, conns=[CONN]) as h:
        async with raw_client(h.port) as c:
            await open_transaction(c)
            assert (await c.command(b"DATA\r\n")).code == 354
            await c.send(b"Subject: cut\r\n\r\nhalf a mess")
        await eventually(lambda: h.server.session_count() == 0, 5, "session released")
        assert h.intake.messages == []


# -- the accepted message ----------------------------------------------------------------


async def test_received_header_is_prepended_and_sanitised(tmp_path: Path) -> None:
    async with accept_server(tmp_path, conns=[CONN]) as h:
        async with raw_client(h.port) as c:
            await c.session(b'EHLO evil(x);<y>"z\\ \xc3\xbc host\r\n')
            await c.send(MAIL + RCPT + b"DATA\r\n")
            await c.replies(3)
            reply = (await c.command(BODY + b".\r\n")).line
            await c.send(b"HELO " + b"h" * 300 + b"\r\n" + MAIL + RCPT)
            await c.send(b'RCPT TO:<"john doe"@minfin.gov.kz>\r\nDATA\r\n')
            await c.replies(5)
            assert (await c.command(BODY + b".\r\n")).code == 250
        first, second = h.intake.messages
    qid = first.id
    assert reply == str(replies.queued(qid))
    assert first.data == (
        b"Received: from evilxyzhost ([127.0.0.1])\r\n"
        b"\tby gw.test (UGEM) with ESMTP id " + qid.encode() + b"\r\n"
        b"\tfor <clerk@minfin.gov.kz>;\r\n"
        b"\tThu, 01 Jan 2026 00:00:00 +0000\r\n" + BODY
    )
    header = (second.data or b"").split(b"\r\n" + BODY[:8])[0].decode()
    assert header.startswith("Received: from " + "h" * 64 + " ([127.0.0.1])\r\n")
    assert " with SMTP id " in header and "for <" not in header  # two recipients: no "for"
    assert first.size == len(first.data or b"")


def test_safe_helo_keeps_only_name_characters() -> None:
    assert safe_helo("mail.example.org") == "mail.example.org"
    assert safe_helo("[IPv6:2001:db8::1]") == "[IPv6:2001:db8::1]"
    assert safe_helo('(); <>"\\') == "unknown"


async def test_accepted_event_and_metrics_follow_the_250(tmp_path: Path) -> None:
    """The refused RCPT is published with the rule behind it, then the message accepted
    with its Message-ID, HELO name and TLS (for the mail log)."""
    async with accept_server(tmp_path, conns=[CONN]) as h:
        events = h.bus.subscribe("test")
        async with raw_client(h.port) as c:
            await open_transaction(c)
            assert (await c.command(b"RCPT TO:<victim@gmail.com>\r\n")).code == 554
            body = b"Message-ID: <m1@ext.org>\r\n" + BODY
            assert (await send_message(c, body)).startswith("250 ")
        refused = await asyncio.wait_for(events.get(), 5)
        event = await asyncio.wait_for(events.get(), 5)
        await eventually(lambda: h.server.session_count() == 0, 5, "session released")
        msg = h.intake.messages[0]
        relay_denied = replies.RELAY_DENIED
        assert refused == Refused(
            h.clock.now(),
            "127.0.0.1",
            "",
            "RCPT",
            relay_denied.code,
            relay_denied.status,
            relay_denied.text,
            why(relay_denied),
            "someone@ext.org",
            ("victim@gmail.com",),
            "client.test",
        )
        assert event == Accepted(
            h.clock.now(),
            msg.id,
            "",
            "127.0.0.1",
            "someone@ext.org",
            ("clerk@minfin.gov.kz",),
            msg.size,
            message_id="m1@ext.org",
            helo="client.test",
        )
        assert_metrics(h)


def assert_metrics(h: Harness) -> None:
    sample = h.metrics.registry.get_sample_value
    assert h.replies("RCPT", 554) == 1
    assert h.replies("DATA", 250) == 1
    assert sample("ugem_messages_total", {"outcome": "accepted"}) == 1
    opened = [x for m in h.metrics.smtp_connections_total.collect() for x in m.samples]
    assert [x.value for x in opened if x.name.endswith("_total")] == [1]
    open_now = [x.value for m in h.metrics.smtp_connections.collect() for x in m.samples]
    assert open_now == [0]  # all closed again
    assert sample("ugem_accept_latency_seconds_count") == 1


# -- STARTTLS ----------------------------------------------------------------------------


def tls_keys(tmp_path: Path, **smtp: Any) -> dict[str, Any]:
    cert, key = self_signed(tmp_path)
    return {"tls_cert": str(cert), "tls_key": str(key), **smtp}


async def test_starttls_upgrade_then_second_starttls_is_refused(tmp_path: Path) -> None:
    async with accept_server(tmp_path, conns=[CONN], **tls_keys(tmp_path)) as h:

        def session() -> tuple[bool, bool, tuple[int, bytes]]:
            with smtplib_session(h.port) as client:
                client.ehlo("client.test")
                offered = client.has_extn("starttls")
                client.starttls(context=client_context())
                client.ehlo("client.test")
                again = client.docmd("STARTTLS")
                client.sendmail("a@ext.org", ["clerk@minfin.gov.kz"], BODY)
                return offered, client.has_extn("starttls"), again

        offered, offered_in_tls, again = await asyncio.to_thread(session)
    assert offered and not offered_in_tls
    assert again == (503, str(replies.ALREADY_TLS)[4:].encode())
    assert b" with ESMTPS id " in (h.intake.messages[0].data or b"")


async def test_starttls_discards_cleartext_pipelined_behind_it(tmp_path: Path) -> None:
    async with (
        accept_server(tmp_path, conns=[CONN], **tls_keys(tmp_path)) as h,
        raw_client(h.port) as c,
    ):
        await c.session()
        await c.send(b"STARTTLS\r\nMAIL FROM:<injected@ext.org>\r\n" + RCPT)
        assert (await c.reply()).line == str(replies.READY_TLS)
        await c.writer.start_tls(client_context())
        ehlo = await c.command(b"EHLO client.test\r\n")
        assert ehlo.lines[0] == "250-gw.test"  # not a reply to the injected MAIL
        assert (await c.command(RCPT)).line == str(replies.NEED_MAIL)
        assert (await c.command(MAIL)).line == str(replies.SENDER_OK)  # not NESTED_MAIL


async def test_stalled_tls_handshake_is_dropped(tmp_path: Path) -> None:
    keys = tls_keys(tmp_path, tls_handshake_timeout=0.2)
    async with accept_server(tmp_path, **keys) as h, raw_client(h.port) as c:
        await c.session()
        assert (await c.command(b"STARTTLS\r\n")).line == str(replies.READY_TLS)
        assert await c.closed(timeout=5)
        await eventually(lambda: h.server.session_count() == 0, 5, "session released")


def test_tls_needs_both_a_readable_certificate_and_its_key(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    assert load_tls("", "") is None
    assert load_tls(str(cert), str(key)) is not None
    with pytest.raises(ConfigError, match=r"smtp\.tls_key"):
        load_tls(str(cert), "")
    with pytest.raises(ConfigError, match=r"smtp\.tls_cert"):
        load_tls(str(tmp_path / "missing.pem"), str(key))


# -- stop --------------------------------------------------------------------------------


async def test_stop_closes_idle_sessions_and_lets_a_message_in_progress_finish(
    tmp_path: Path,
) -> None:
    async with accept_server(tmp_path, conns=[CONN]) as h:
        async with raw_client(h.port) as idle, raw_client(h.port) as busy:
            await idle.session()
            await open_transaction(busy)
            assert (await busy.command(b"DATA\r\n")).code == 354
            await busy.send(b"Subject: late\r\n\r\nfirst half, ")
            stopping = asyncio.create_task(h.server.stop(grace=5.0))
            assert (await idle.reply()).line == str(replies.SHUTTING_DOWN)
            assert await idle.closed()
            await busy.send(b"second half\r\n.\r\n")
            assert (await busy.reply()).code == 250
            assert (await busy.reply()).line == str(replies.SHUTTING_DOWN)
            assert await busy.closed()
            await stopping
        assert len(h.intake.messages) == 1
        with pytest.raises(OSError):
            await RawClient.open(h.port)


async def test_a_drain_refuses_new_sessions_and_closes_the_others_between_commands(
    tmp_path: Path,
) -> None:
    async with accept_server(tmp_path, conns=[CONN]) as h:
        async with raw_client(h.port) as idle, raw_client(h.port) as busy:
            await idle.session()
            await open_transaction(busy)
            assert (await busy.command(b"DATA\r\n")).code == 354
            await busy.send(b"Subject: late\r\n\r\nfirst half, ")
            h.server.refuse(replies.DRAINING)
            assert (await idle.reply()).line == str(replies.DRAINING)
            await busy.send(b"second half\r\n.\r\n")
            assert (await busy.reply()).code == 250  # the message in progress is kept
            assert (await busy.reply()).line == str(replies.DRAINING)
        async with raw_client(h.port) as late:
            assert (await late.reply()).line == str(replies.DRAINING)  # instead of a banner
            assert await late.closed()
        await eventually(h.server.quiet, 5, "no session left")
        assert len(h.intake.messages) == 1
        h.server.refuse(None)
        async with raw_client(h.port) as again:
            assert (await again.reply()).code == 220


async def test_stop_aborts_sessions_still_busy_after_the_grace(tmp_path: Path) -> None:
    async with accept_server(tmp_path, conns=[CONN]) as h, raw_client(h.port) as c:
        await open_transaction(c)
        assert (await c.command(b"DATA\r\n")).code == 354
        await h.server.stop(grace=0.2)
        assert h.server.session_count() == 0
        with pytest.raises(ConnectionError):
            await c.reply()


async def test_commit_in_flight_finishes_even_if_the_client_hangs_up(tmp_path: Path) -> None:
    async with accept_server(tmp_path, conns=[CONN]) as h:
        h.intake.gate = asyncio.Event()
        async with raw_client(h.port) as c:
            await open_transaction(c)
            assert (await c.command(b"DATA\r\n")).code == 354
            await c.send(BODY + b".\r\n")
            await eventually(lambda: bool(h.server._commits), 5, "commit started")
            sock = c.writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # the close above was a reset: the session is cancelled in the middle of its commit
        await eventually(lambda: h.server.session_count() == 0, 5, "session released")
        h.intake.gate.set()
        await eventually(lambda: len(h.intake.messages) == 1, 5, "commit finished")
