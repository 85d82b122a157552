"""The generator's SMTP client over loopback: PIPELINING or not, dot-stuffing, refusals.

The happy paths run against the loadtest sink; the refusals against a scripted
server that answers each command from a table and records what it was sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from loadtest.content import Message, MessageFactory, SizeDist, Template
from loadtest.sink import SinkServer
from loadtest.smtp import Refused, Session, SessionLost, parse_reply_line, stuff


class Scripted:
    """An SMTP server answering from `answers` (verb → reply), recording every line."""

    def __init__(self, answers: dict[bytes, bytes], greeting: bytes = b"220 scripted\r\n") -> None:
        self.answers = {b"EHLO": b"250-scripted\r\n250 PIPELINING\r\n", b"DATA": b"354 go\r\n",
                        b"END": b"250 queued\r\n", b"QUIT": b"221 bye\r\n"} | answers  # fmt: skip
        self.greeting = greeting
        self.lines: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(self.greeting)
        in_data = False
        while line := await reader.readline():
            self.lines.append(line)
            verb = b"END" if in_data and line == b".\r\n" else line[:4].upper()
            if in_data and verb != b"END":
                continue
            answer = self.answers.get(verb, b"250 ok\r\n")
            in_data = verb == b"DATA" and answer.startswith(b"354")
            writer.write(answer)
            if verb == b"QUIT" or answer.startswith(b"421"):
                break
        writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def loadtest_sink() -> AsyncIterator[SinkServer]:
    sink = await SinkServer.start(keep=True)
    yield sink
    await sink.stop()


def _message(n: int = 1, rcpts: int = 1) -> Message:
    factory = MessageFactory(
        "t", Template("a{n}@x.org"), Template("b{n}.{r}@y.org"), rcpts, SizeDist("fixed", 600)
    )
    return factory.make(n)


@pytest.mark.parametrize("pipelining", [True, False])
async def test_messages_over_one_session(loadtest_sink: SinkServer, pipelining: bool) -> None:
    session = await Session.open("127.0.0.1", loadtest_sink.port, None, "c.test", pipelining)
    assert session.pipelining is pipelining
    outcomes = [await session.send(_message(n, rcpts=2)) for n in range(3)]
    await session.quit()
    assert all(o.accepted and o.latency is not None and o.latency > 0 for o in outcomes)
    assert loadtest_sink.arrivals.stats()["unique_ids"] == 3
    assert loadtest_sink.arrivals.recipients == 6
    assert loadtest_sink.arrivals.sessions == 1


async def test_text_with_leading_dots_arrives_unchanged(loadtest_sink: SinkServer) -> None:
    text = b"X-Loadtest-Id: t-dots\r\n\r\n.one\r\n..two\r\n.\r\nend\r\n"
    message = Message(1, "a@x.org", ("b@y.org",), text, "t-dots")
    session = await Session.open("127.0.0.1", loadtest_sink.port, "127.0.0.2", "c.test")
    assert (await session.send(message)).accepted
    await session.quit()
    assert loadtest_sink.arrivals.kept == [text]


def test_stuffing_and_reply_lines() -> None:
    assert stuff(b".a\r\nb\r\n.\r\n") == b"..a\r\nb\r\n..\r\n"
    assert parse_reply_line(b"250-PIPELINING\r\n") == (250, False, b"PIPELINING")
    assert parse_reply_line(b"554 5.7.1 no\r\n") == (554, True, b"5.7.1 no")
    with pytest.raises(SessionLost):
        parse_reply_line(b"hello\r\n")


async def test_all_recipients_refused_then_rset_before_the_next() -> None:
    server = Scripted({b"RCPT": b"554 5.7.1 Relay access denied\r\n",
                       b"DATA": b"554 5.5.1 No valid recipients\r\n"})  # fmt: skip
    await server.start()
    try:
        session = await Session.open("127.0.0.1", server.port, None, "c.test")
        first = await session.send(_message(1, rcpts=2))
        second = await session.send(_message(2))
        await session.quit()
    finally:
        await server.stop()
    assert (first.code, first.rcpt_refused, first.latency) == (554, (554, 554), None)
    assert second.code == 554
    verbs = [line[:4] for line in server.lines]
    assert verbs == [b"EHLO", b"MAIL", b"RCPT", b"RCPT", b"DATA",
                     b"RSET", b"MAIL", b"RCPT", b"DATA", b"QUIT"]  # fmt: skip


@pytest.mark.parametrize(
    ("answers", "code"),
    [
        ({b"MAIL": b"550 5.7.1 Sender denied\r\n"}, 550),
        ({b"END": b"451 4.3.0 Try later\r\n"}, 451),
        ({b"DATA": b"452 4.3.1 Full\r\n"}, 452),
    ],
)
async def test_the_reply_that_ends_the_transaction_is_its_code(
    answers: dict[bytes, bytes], code: int
) -> None:
    server = Scripted(answers)
    await server.start()
    try:
        session = await Session.open("127.0.0.1", server.port, None, "c.test", pipelining=False)
        outcome = await session.send(_message())
        await session.quit()
    finally:
        await server.stop()
    assert outcome.code == code
    assert not outcome.accepted


async def test_greeting_refusal_and_421_end_the_session() -> None:
    server = Scripted({}, greeting=b"421 4.7.0 Too many connections\r\n")
    await server.start()
    try:
        with pytest.raises(Refused) as refused:
            await Session.open("127.0.0.1", server.port, None, "c.test")
        assert refused.value.code == 421
        server.greeting = b"220 ok\r\n"
        server.answers[b"MAIL"] = b"421 4.3.2 Shutting down\r\n"
        session = await Session.open("127.0.0.1", server.port, None, "c.test", pipelining=False)
        outcome = await session.send(_message())
        assert outcome.code == 421
        assert not session.alive
        await session.quit()
    finally:
        await server.stop()
