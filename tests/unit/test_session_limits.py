"""Session limits of issue 10 over real loopback sockets: nothing a client does is free for ever.

Findings guarded here: idle strangers cannot lock connected servers out
(reserved slots, a per-stranger cap); a repeated HELO/EHLO counts as a
NOOP-like command and a session without an accepted message ends after
`max_idle_session` (on the injected clock); Unicode digits in SIZE are a 501,
never a traceback; every refusal counts toward `max_bad_commands`, policy
refusals of a recipient toward `max_rcpt_denials`. Clients bind to
127.0.0.x: 127.0.0.2 is the connected server of minfin.gov.kz, the others
are strangers.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import pytest

from relay import replies
from tests.support.connections import plain
from tests.support.smtp_harness import RawClient, accept_server, raw_client
from ugem.core.config import SmtpConfig
from ugem.core.errors import SpoolFullError, StoreError
from ugem.core.model import ConnState

INSIDER = "127.0.0.2"  # the mail server of minfin.gov.kz
CONN = plain("minfin.gov.kz", INSIDER)
MAIL = b"MAIL FROM:<someone@ext.org>\r\n"
RCPT = b"RCPT TO:<clerk@minfin.gov.kz>\r\n"
DENIED = b"RCPT TO:<victim@gmail.com>\r\n"
BODY = b"Subject: test\r\n\r\nHello.\r\n.\r\n"


async def greeting(client: RawClient) -> str:
    """The first line the server sends: the banner or a 421 refusal."""
    return (await client.reply()).line


async def queued(client: RawClient, mail: bytes = MAIL, rcpt: bytes = RCPT) -> str:
    """MAIL, RCPT and DATA of one message on a greeted session; the final reply."""
    assert (await client.command(mail)).code == 250
    assert (await client.command(rcpt)).code == 250
    assert (await client.command(b"DATA\r\n")).line == str(replies.START_DATA)
    return (await client.command(BODY)).line


# -- finding 4: idle strangers and the connected servers' slots ---------------------------


async def test_idle_strangers_cannot_lock_out_a_connected_server(tmp_path: Path) -> None:
    limits: dict[str, Any] = {
        "max_connections": 20,
        "reserved_share": 0.25,  # 5 slots kept for connected servers, 15 for anyone
        "max_connections_per_ip": 100,
        "max_connections_per_stranger": 4,
    }
    async with (
        accept_server(tmp_path, conns=[CONN], **limits) as h,
        contextlib.AsyncExitStack() as stack,
    ):
        await h.registry.sync()  # a node syncs every second; the harness only at MAIL
        seen: dict[str, list[str]] = {}
        for n in range(3, 11):  # 8 strangers, 5 idle connections each
            source = f"127.0.0.{n}"
            for _ in range(5):
                client = await stack.enter_async_context(raw_client(h.port, source))
                seen.setdefault(source, []).append(await greeting(client))
        banner = str(replies.greeting("gw.test"))
        admitted = sum(line == banner for lines in seen.values() for line in lines)
        assert admitted == 15 and h.server.session_count() == 15
        assert seen["127.0.0.3"] == [banner] * 4 + [str(replies.TOO_MANY_FROM_IP)]
        assert seen["127.0.0.10"] == [str(replies.TOO_MANY_CONNECTIONS)] * 5

        servers = [await stack.enter_async_context(raw_client(h.port, INSIDER)) for _ in range(5)]
        assert [await greeting(s) for s in servers] == [banner] * 5
        assert (await servers[0].command(b"EHLO mail.minfin.gov.kz\r\n")).code == 250
        out = b"MAIL FROM:<clerk@minfin.gov.kz>\r\n"
        assert (await queued(servers[0], out, b"RCPT TO:<friend@gmail.com>\r\n")).startswith(
            "250 2.0.0 Ok: queued as "
        )
        async with raw_client(h.port, INSIDER) as over_the_total:
            assert await greeting(over_the_total) == str(replies.TOO_MANY_CONNECTIONS)
    assert h.intake.messages[0].connection == "minfin.gov.kz"


async def test_a_suspended_server_gets_no_reserved_slot(tmp_path: Path) -> None:
    limits: dict[str, Any] = {
        "max_connections": 4,
        "reserved_share": 0.5,
        "max_connections_per_stranger": 10,
    }
    async with (
        accept_server(tmp_path, conns=[CONN], **limits) as h,
        contextlib.AsyncExitStack() as stack,
    ):
        await h.set_state("minfin.gov.kz", ConnState.SUSPENDED)
        await h.registry.sync()
        lines = []
        for _ in range(3):
            client = await stack.enter_async_context(raw_client(h.port, INSIDER))
            lines.append(await greeting(client))
        assert lines[2] == str(replies.TOO_MANY_CONNECTIONS)
        assert h.server.session_count() == 2


# -- finding 4: what a session may do without ever sending a message ----------------------


async def test_ehlo_loop_is_closed_like_a_noop_loop(tmp_path: Path) -> None:
    async with (
        accept_server(tmp_path, max_noop_commands=3) as h,
        raw_client(h.port, "127.0.0.3") as c,
    ):
        assert (await c.session()).code == 250  # the first greeting is free
        for line in (b"EHLO again.test\r\n", b"HELO again.test\r\n", b"EHLO again.test\r\n"):
            assert (await c.command(line)).code == 250
        assert (await c.command(b"EHLO again.test\r\n")).line == str(replies.TOO_MANY_NOOPS)
        assert await c.closed()


async def test_session_without_a_message_ends_after_max_idle_session(tmp_path: Path) -> None:
    async with (
        accept_server(tmp_path, conns=[CONN], max_idle_session=60) as h,
        raw_client(h.port, "127.0.0.3") as c,
    ):
        await c.session()
        h.clock.advance(50)
        assert (await queued(c)).startswith("250 2.0.0 Ok: queued as ")  # restarts the clock
        h.clock.advance(50)  # 100 s since the start, 50 since the message
        assert (await c.command(b"RCPT TO:<a@minfin.gov.kz>\r\n")).line == str(replies.NEED_MAIL)
        assert (await c.command(MAIL)).code == 250
        h.clock.advance(11)
        assert (await c.command(RCPT)).line == str(replies.IDLE_SESSION)
        assert await c.closed()


async def test_silent_session_ends_at_max_idle_session_before_command_timeout(
    tmp_path: Path,
) -> None:
    async with (
        accept_server(tmp_path, max_idle_session=1, command_timeout=30) as h,
        raw_client(h.port, "127.0.0.3") as c,
    ):
        await c.session()
        assert (await c.reply(timeout=10)).line == str(replies.IDLE_SESSION)
        assert await c.closed()


# -- finding 7: Unicode digits, and every refusal counts ----------------------------------


@pytest.mark.parametrize("value", ["\u00b2", "\u2460", "\u0663", "\uff11", "1\u0663"])
async def test_unicode_digits_in_size_are_a_501_never_a_traceback(
    tmp_path: Path, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    line = f"MAIL FROM:<a@b.org> SIZE={value}\r\n".encode()
    with caplog.at_level(logging.DEBUG):
        async with (
            accept_server(tmp_path, max_bad_commands=3) as h,
            raw_client(h.port, "127.0.0.3") as c,
        ):
            await c.session()
            await c.send(line * 5)  # in one write, as the attack did
            got = [(await c.reply()).line for _ in range(4)]
            assert await c.closed()
    assert got == [str(replies.PARAM_VALUE_BAD)] * 3 + [str(replies.TOO_MANY_BAD)]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_unicode_case_folding_makes_no_verb_or_parameter(tmp_path: Path) -> None:
    async with accept_server(tmp_path) as h, raw_client(h.port, "127.0.0.3") as c:
        await c.session()
        mail = "MA\u0131L FROM:<a@b.org>\r\n".encode()  # "\u0131".upper() is "I"
        assert (await c.command(mail)).line == str(replies.UNKNOWN_COMMAND)
        body = "MAIL FROM:<a@b.org> BODY=7b\u0131t\r\n".encode()
        assert (await c.command(body)).line == str(replies.PARAM_VALUE_BAD)
        assert (await c.command(b"MAIL FROM:<a@b.org> SIZE=100 BODY=7bit\r\n")).code == 250


async def test_451s_for_a_registry_it_cannot_read_count_toward_the_bad_command_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken() -> None:
        raise StoreError("sqlite store: database is locked")

    async with (
        accept_server(tmp_path, conns=[CONN], max_bad_commands=2) as h,
        raw_client(h.port, "127.0.0.3") as c,
    ):
        monkeypatch.setattr(h.registry, "sync", broken)
        await c.session()
        # no registry to relay on (fail-static has no copy yet): a 451 that counts
        assert (await c.command(MAIL)).line == str(replies.REGISTRY_UNAVAILABLE)
        assert (await c.command(MAIL)).line == str(replies.REGISTRY_UNAVAILABLE)
        assert (await c.command(MAIL)).line == str(replies.TOO_MANY_BAD)
        assert await c.closed()


async def test_policy_refusals_at_mail_count_toward_the_bad_command_limit(tmp_path: Path) -> None:
    async with (
        accept_server(tmp_path, conns=[CONN], max_bad_commands=2) as h,
        raw_client(h.port, INSIDER) as c,
    ):
        await c.session()
        foreign = b"MAIL FROM:<ceo@gmail.com>\r\n"
        assert [(await c.command(foreign)).line for _ in range(2)] == [
            str(replies.SENDER_DENIED)
        ] * 2
        assert (await c.command(foreign)).line == str(replies.TOO_MANY_BAD)
        assert await c.closed()


async def test_refused_messages_count_and_the_session_ends_after_the_limit(
    tmp_path: Path,
) -> None:
    async with (
        accept_server(tmp_path, conns=[CONN], max_bad_commands=1) as h,
        raw_client(h.port, "127.0.0.3") as c,
    ):
        h.intake.error = SpoolFullError("disk full")
        await c.session()
        assert await queued(c) == str(replies.SPOOL_FULL)
        await c.send(MAIL + RCPT + b"DATA\r\n" + BODY)
        rest: list[str] = []
        with contextlib.suppress(ConnectionError):
            while True:
                rest.append((await c.reply()).line)
    # the second refusal is over the limit: the session ends with 421 (after the 452)
    assert rest[:3] == [str(replies.SENDER_OK), str(replies.RCPT_OK), str(replies.START_DATA)]
    assert rest[3:] == [str(replies.SPOOL_FULL), str(replies.TOO_MANY_BAD)], rest


async def test_452_too_many_recipients_is_not_a_bad_command(tmp_path: Path) -> None:
    async with (
        accept_server(tmp_path, conns=[CONN], max_recipients=100, max_bad_commands=1) as h,
        raw_client(h.port, "127.0.0.3") as c,
    ):
        await c.session()
        rcpts = b"".join(b"RCPT TO:<u%d@minfin.gov.kz>\r\n" % i for i in range(105))
        await c.send(MAIL + rcpts)
        got = await c.replies(106)
        assert [g.line for g in got[101:]] == [str(replies.TOO_MANY_RECIPIENTS)] * 5
        assert (await c.command(b"DATA\r\n")).line == str(replies.START_DATA)
        assert (await c.command(BODY)).line.startswith("250 2.0.0 Ok: queued as ")


# -- finding 9: relay denials ---------------------------------------------------------------


async def test_relay_denials_close_the_session_after_the_limit(tmp_path: Path) -> None:
    async with (
        accept_server(tmp_path, conns=[CONN], max_rcpt_denials=3, max_bad_commands=1) as h,
        raw_client(h.port, "127.0.0.3") as c,
    ):
        await c.session()
        assert (await c.command(MAIL)).code == 250
        await c.send(DENIED + RCPT + DENIED + b"RCPT TO:<root@gw.test>\r\n" + DENIED + DENIED)
        got = [(await c.reply()).line for _ in range(5)]
        assert await c.closed()
    assert got == [
        str(replies.RELAY_DENIED),
        str(replies.RCPT_OK),
        str(replies.RELAY_DENIED),
        str(replies.NO_LOCAL_MAILBOX),
        str(replies.TOO_MANY_RCPT_DENIALS),  # the 4th denial; not TOO_MANY_BAD at the 2nd
    ]


async def test_thousands_of_denied_rcpts_in_one_write_get_few_answers(tmp_path: Path) -> None:
    async with accept_server(tmp_path, conns=[CONN]) as h, raw_client(h.port, "127.0.0.3") as c:
        await c.session()
        assert (await c.command(MAIL)).code == 250
        await c.send(DENIED * 3000)
        lines: list[str] = []
        with contextlib.suppress(ConnectionError):  # a close with input unread may be a reset
            while True:
                lines.append((await c.reply()).line)
        assert h.replies("RCPT", 554) == h.config.smtp.max_rcpt_denials == 20
        assert h.replies("CLOSE", 421) == 1
    assert set(lines) <= {str(replies.RELAY_DENIED), str(replies.TOO_MANY_RCPT_DENIALS)}


# -- finding 10: no trailing dot -----------------------------------------------------------


@pytest.mark.parametrize("domain", [b"minfin.gov.kz..", b"minfin.gov.kz.", b"minfin..gov.kz"])
async def test_trailing_dots_and_empty_labels_are_refused_on_the_wire(
    tmp_path: Path, domain: bytes
) -> None:
    async with accept_server(tmp_path, conns=[CONN]) as h, raw_client(h.port, "127.0.0.3") as c:
        await c.session()
        refused = await c.command(b"MAIL FROM:<a@" + domain + b">\r\n")
        assert refused.line == str(replies.BAD_SENDER_SYNTAX)
        assert (await c.command(MAIL)).code == 250
        refused = await c.command(b"RCPT TO:<clerk@" + domain + b">\r\n")
        assert refused.line == str(replies.BAD_RCPT_SYNTAX)
    assert h.intake.messages == []


def test_defaults_keep_slots_for_connected_servers() -> None:
    smtp = SmtpConfig()
    assert smtp.max_connections_per_stranger < smtp.max_connections_per_ip
    assert int(smtp.max_connections * smtp.reserved_share) > 0
    assert smtp.max_rcpt_denials <= 100 and smtp.max_idle_session >= smtp.command_timeout
