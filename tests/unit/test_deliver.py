"""The SMTP delivery client over loopback: against the aiosmtpd sink, and against a
scripted raw peer (`RawPeer`) that shows what went on the wire, and in which reads."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from relay.deliver.routing import Hop, Route
from relay.deliver.smtp_client import dot_stuff
from relay.deliver.transaction import Deliverer
from relay.deliver.trouble import RcptOutcome
from tests.support.peers import require_module
from tests.support.sink import Sink, server_tls_context
from ugem.core.clock import FakeClock
from ugem.core.config import DeliveryConfig
from ugem.core.metrics import Metrics

Make = Callable[..., Deliverer]
TEXT = b"From: a@mdai.gov.kz\r\nTo: x@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"


def route_to(*sinks: Sink, key: str = "") -> Route:
    hops = tuple(Hop(s.host, s.port) for s in sinks)
    return Route(key or f"route:{hops[0]}", hops)


def closed_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sessions_gauge(deliverer: Deliverer) -> float | None:
    return deliverer.metrics.registry.get_sample_value("ugem_outbound_sessions")


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    """Deliverer factory (DeliveryConfig keywords); every one is closed after the test."""
    made: list[Deliverer] = []

    def factory(clock: FakeClock | None = None, **delivery: Any) -> Deliverer:
        delivery.setdefault("connect_timeout", 5.0)
        delivery.setdefault("command_timeout", 10.0)
        deliverer = Deliverer(
            DeliveryConfig(**delivery), "relay.test", Metrics(), clock or FakeClock()
        )
        made.append(deliverer)
        return deliverer

    yield factory
    for deliverer in made:
        await deliverer.close()


async def send(
    deliverer: Deliverer,
    route: Route,
    rcpts: list[str],
    data: bytes = TEXT,
    sender: str = "a@mdai.gov.kz",
    queue_id: str = "Q1",
) -> list[RcptOutcome]:
    outcomes = await deliverer.deliver(route, sender, rcpts, data, queue_id)
    assert [o.rcpt for o in outcomes] == rcpts
    return outcomes


def kinds(outcomes: list[RcptOutcome]) -> list[tuple[str, str]]:
    return [(o.kind, o.status) for o in outcomes]


async def test_the_text_arrives_byte_for_byte(make: Make, sink: Sink) -> None:
    data = (
        b"Subject: dots and 8-bit\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n"
        b"not the end\r\n\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xff\r\n"
        b" .\r\n\r\n\r\n"
    )
    deliverer = make()
    outcomes = await send(deliverer, route_to(sink), ["x@example.org"], data)
    assert outcomes == [
        RcptOutcome("x@example.org", "delivered", 250, "2.0.0", "OK", f"{sink.host}:{sink.port}")
    ]
    got = (await sink.wait_for(1))[0]
    assert got.data == data
    assert (got.sender, got.rcpts) == ("a@mdai.gov.kz", ["x@example.org"])
    assert f"SIZE={len(data)}" in got.mail_options and "BODY=8BITMIME" in got.mail_options


async def test_seven_bit_text_is_sent_without_body_8bitmime(make: Make, sink: Sink) -> None:
    await send(make(), route_to(sink), ["x@example.org"])
    got = (await sink.wait_for(1))[0]
    assert got.data == TEXT and got.mail_options == [f"SIZE={len(TEXT)}"]


async def test_the_null_sender_goes_out_as_null(make: Make, sink: Sink) -> None:
    outcomes = await send(make(), route_to(sink), ["x@example.org"], sender="")
    assert kinds(outcomes) == [("delivered", "2.0.0")]
    assert (await sink.wait_for(1))[0].sender == ""


async def test_each_recipient_gets_its_own_reply(make: Make, sink: Sink) -> None:
    sink.rcpt_reply = lambda addr: "550 5.1.1 No such user" if addr.startswith("no") else None
    rcpts = ["a@example.org", "nobody@example.org", "b@example.org"]
    outcomes = await send(make(), route_to(sink), rcpts)
    assert kinds(outcomes) == [("delivered", "2.0.0"), ("bounced", "5.1.1"), ("delivered", "2.0.0")]
    assert outcomes[1].text == "No such user" and outcomes[1].code == 550
    assert (await sink.wait_for(1))[0].rcpts == ["a@example.org", "b@example.org"]


async def test_no_data_is_sent_when_every_recipient_is_refused(make: Make, sink: Sink) -> None:
    sink.rcpt_reply = lambda addr: "450 4.2.1 later" if addr.startswith("a") else "550 5.1.1 no"
    deliverer = make()
    outcomes = await send(deliverer, route_to(sink), ["a@example.org", "b@example.org"])
    assert kinds(outcomes) == [("deferred", "4.2.1"), ("bounced", "5.1.1")]
    sink.rcpt_reply = None
    assert kinds(await send(deliverer, route_to(sink), ["c@example.org"])) == [
        ("delivered", "2.0.0")
    ]
    assert [m.rcpts for m in await sink.wait_for(1)] == [["c@example.org"]]
    assert sink.connections == 1


async def test_a_4xx_after_data_defers_every_accepted_recipient(make: Make, sink: Sink) -> None:
    sink.data_replies = ["451 4.3.0 try later"]
    sink.rcpt_reply = lambda addr: "550 5.1.1 No such user" if addr.startswith("no") else None
    deliverer = make()
    rcpts = ["a@example.org", "nobody@example.org", "b@example.org"]
    outcomes = await send(deliverer, route_to(sink), rcpts)
    assert kinds(outcomes) == [("deferred", "4.3.0"), ("bounced", "5.1.1"), ("deferred", "4.3.0")]
    assert outcomes[0].text == "try later" and sink.messages == []
    # the session survives a refused DATA and carries the retry
    assert kinds(await send(deliverer, route_to(sink), ["a@example.org"])) == [
        ("delivered", "2.0.0")
    ]
    assert sink.connections == 1


async def test_a_5xx_after_data_bounces_every_accepted_recipient(make: Make, sink: Sink) -> None:
    sink.data_replies = ["554 5.6.0 content refused"]
    outcomes = await send(make(), route_to(sink), ["a@example.org", "b@example.org"])
    assert kinds(outcomes) == [("bounced", "5.6.0"), ("bounced", "5.6.0")]


async def test_a_refused_sender_decides_for_every_recipient(make: Make, sink: Sink) -> None:
    sink.mail_reply = lambda addr: "553 5.7.1 sender not allowed"
    outcomes = await send(make(), route_to(sink), ["a@example.org", "b@example.org"])
    assert kinds(outcomes) == [("bounced", "5.7.1"), ("bounced", "5.7.1")]


async def test_a_refused_first_hop_fails_over_to_the_second(make: Make, sink: Sink) -> None:
    dead = Hop("127.0.0.1", closed_tcp_port())
    route = Route("conn:mdai.gov.kz", (dead, Hop(sink.host, sink.port)))
    outcomes = await send(make(), route, ["x@example.org"])
    assert kinds(outcomes) == [("delivered", "2.0.0")]
    assert outcomes[0].hop == f"{sink.host}:{sink.port}"
    await sink.wait_for(1)


async def test_when_every_hop_is_down_every_recipient_is_deferred(make: Make) -> None:
    hops = (Hop("127.0.0.1", closed_tcp_port()), Hop("127.0.0.1", closed_tcp_port()))
    deliverer = make()
    outcomes = await send(deliverer, Route("mx:example.org", hops), ["a@x.org", "b@x.org"])
    assert kinds(outcomes) == [("deferred", "4.4.1"), ("deferred", "4.4.1")]
    assert {o.hop for o in outcomes} == {str(hops[1])}  # the last error
    assert deliverer.open_sessions == 0 and sessions_gauge(deliverer) == 0


async def test_a_hop_that_never_greets_times_out_and_is_deferred(make: Make) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        deliverer = make(connect_timeout=0.3)
        outcomes = await send(deliverer, Route("k", (Hop("127.0.0.1", port),)), ["a@x.org"])
        assert kinds(outcomes) == [("deferred", "4.4.1")]
        assert "timed out" in outcomes[0].text
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_one_session_carries_several_messages(make: Make, sink: Sink) -> None:
    deliverer = make()
    for n in range(5):
        outcomes = await send(deliverer, route_to(sink), [f"u{n}@example.org"], queue_id=f"Q{n}")
        assert kinds(outcomes) == [("delivered", "2.0.0")]
    got = await sink.wait_for(5)
    assert sink.connections == 1
    assert {(m.session, m.peer_port) for m in got} == {(1, got[0].peer_port)}
    assert deliverer.open_sessions == 1 and sessions_gauge(deliverer) == 1
    await deliverer.close()
    await sink.wait_until(lambda: sink.active == 0, 5, "the idle session closed")
    assert deliverer.open_sessions == 0 and sessions_gauge(deliverer) == 0


async def test_a_session_is_closed_after_messages_per_connection(make: Make, sink: Sink) -> None:
    deliverer = make(messages_per_connection=2)
    for n in range(5):
        await send(deliverer, route_to(sink), [f"u{n}@example.org"])
    got = await sink.wait_for(5)
    assert [m.session for m in got] == [1, 1, 2, 2, 3]


async def test_an_idle_session_expires_after_idle_timeout(make: Make, sink: Sink) -> None:
    clock = FakeClock()
    deliverer = make(clock, idle_timeout=5.0)
    await send(deliverer, route_to(sink), ["a@example.org"])
    clock.advance(4.9)
    await send(deliverer, route_to(sink), ["b@example.org"])
    clock.advance(5.0)
    await send(deliverer, route_to(sink), ["c@example.org"])
    assert [m.session for m in await sink.wait_for(3)] == [1, 1, 2]
    await sink.wait_until(lambda: sink.active == 1, 5, "the expired session closed")


async def test_idle_timeout_zero_keeps_no_session(make: Make, sink: Sink) -> None:
    deliverer = make(idle_timeout=0.0)
    await send(deliverer, route_to(sink), ["a@example.org"])
    await send(deliverer, route_to(sink), ["b@example.org"])
    assert [m.session for m in await sink.wait_for(2)] == [1, 2]
    assert deliverer.open_sessions == 0


async def test_a_session_the_peer_closed_is_replaced(make: Make, sink: Sink) -> None:
    deliverer = make()
    await send(deliverer, route_to(sink), ["a@example.org"])
    await sink.drop_sessions()
    outcomes = await send(deliverer, route_to(sink), ["b@example.org"])
    assert kinds(outcomes) == [("delivered", "2.0.0")]
    assert [m.session for m in await sink.wait_for(2)] == [1, 2]
    assert deliverer.open_sessions == 1


async def deliver_held(
    deliverer: Deliverer, sink: Sink, routes: list[Route], held: int
) -> list[list[RcptOutcome]]:
    """Deliver one message per route at once while the sink holds DATA until `held`
    sessions wait in it; the limits must keep any more from connecting meanwhile."""
    sink.data_gate = asyncio.Event()
    tasks = [
        asyncio.create_task(
            deliverer.deliver(route, "a@mdai.gov.kz", [f"u{n}@x.org"], TEXT, f"Q{n}")
        )
        for n, route in enumerate(routes)
    ]
    await sink.wait_until(lambda: sink.in_data >= held, 10, f"{held} sessions in DATA")
    sink.data_gate.set()
    return await asyncio.gather(*tasks)


async def test_sessions_per_destination_are_limited(make: Make, sink: Sink) -> None:
    deliverer = make(concurrency_per_destination=2)
    results = await deliver_held(deliverer, sink, [route_to(sink)] * 6, held=2)
    assert all(kinds(r) == [("delivered", "2.0.0")] for r in results)
    await sink.wait_for(6)
    assert (sink.peak, sink.connections) == (2, 2)


async def test_sessions_in_total_are_limited(make: Make, sink: Sink) -> None:
    deliverer = make(concurrency_total=2, concurrency_per_destination=5)
    routes = [route_to(sink, key=f"route:{n}") for n in range(4)]
    results = await deliver_held(deliverer, sink, routes, held=2)
    assert all(kinds(r) == [("delivered", "2.0.0")] for r in results)
    await sink.wait_for(4)
    assert sink.peak <= 3  # two in use; one more only while an idle one says QUIT
    assert deliverer.open_sessions <= 2


async def test_starttls_is_used_when_offered(make: Make, tls_sink: Sink) -> None:
    outcomes = await send(make(), route_to(tls_sink), ["x@example.org"])
    assert kinds(outcomes) == [("delivered", "2.0.0")]
    got = (await tls_sink.wait_for(1))[0]
    assert got.tls and got.data == TEXT


async def test_starttls_never_stays_plain(make: Make, tls_sink: Sink) -> None:
    await send(make(starttls="never"), route_to(tls_sink), ["x@example.org"])
    assert not (await tls_sink.wait_for(1))[0].tls


async def test_a_failed_tls_handshake_is_retried_in_plain_text(make: Make) -> None:
    broken = server_tls_context()
    broken.verify_mode = ssl.CERT_REQUIRED  # the relay presents no client certificate
    sink = await Sink.start("127.0.0.1", 0, tls=broken)
    try:
        outcomes = await send(make(), route_to(sink), ["x@example.org"])
        assert kinds(outcomes) == [("delivered", "2.0.0")]
        got = (await sink.wait_for(1))[0]
        assert (got.tls, got.session, sink.connections) == (False, 2, 2)
    finally:
        await sink.stop()


async def test_non_ascii_addresses_use_smtputf8(make: Make, sink: Sink) -> None:
    rcpt = "пользователь@пример.рф"
    outcomes = await send(make(), route_to(sink), [rcpt], sender="отправитель@mdai.gov.kz")
    assert kinds(outcomes) == [("delivered", "2.0.0")]
    got = (await sink.wait_for(1))[0]
    assert (got.sender, got.rcpts) == ("отправитель@mdai.gov.kz", [rcpt])
    assert "SMTPUTF8" in got.mail_options


async def test_a_message_over_the_hops_size_bounces_unsent(make: Make) -> None:
    sink = await Sink.start("127.0.0.1", 0, size_limit=1024)
    try:
        outcomes = await send(
            make(), route_to(sink), ["a@x.org", "b@x.org"], data=TEXT + b"x" * 2000 + b"\r\n"
        )
        assert kinds(outcomes) == [("bounced", "5.3.4"), ("bounced", "5.3.4")]
        assert outcomes[0].code == 552 and sink.messages == []
    finally:
        await sink.stop()


async def test_an_unsendable_address_defers_instead_of_raising(make: Make, sink: Sink) -> None:
    deliverer = make()
    outcomes = await send(deliverer, route_to(sink), ["a@x.org\r\nRCPT TO:<b@x.org>"])
    assert kinds(outcomes) == [("deferred", "4.3.0")]
    assert kinds(await send(deliverer, route_to(sink), ["c@x.org"])) == [("delivered", "2.0.0")]


async def test_one_debug_line_per_attempt_names_queue_id_and_hop(
    make: Make, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="relay.deliver.transaction")
    await send(make(), route_to(sink), ["a@x.org"], queue_id="QID42")
    attempts = [r for r in caplog.records if getattr(r, "event", "") == "attempt"]
    assert len(attempts) == 1 and attempts[0].levelno == logging.DEBUG
    fields = attempts[0].fields  # type: ignore[attr-defined]
    assert (fields["queue_id"], fields["hop"], fields["delivered"]) == (
        "QID42",
        f"{sink.host}:{sink.port}",
        1,
    )


# -- the wire: pipelining, dot-stuffing, RSET, stale sessions (a scripted raw peer) -------

HANGUP = b"<hang up>"  # a RawPeer script's answer: close the connection without a reply
SILENT = b"<silent>"  # ... or send no reply at all
Script = Callable[[int, bytes], bytes | None]


class RawPeer:
    """A scripted next hop that records the bytes as they arrive.

    It answers every complete command it has read in one write (as a pipelining
    server does when its input runs dry), or one byte per write with `trickle`.
    `script(connection, line)` (connections numbered from 0; the end of a text
    is the line b".") may return a reply, HANGUP or SILENT instead of the
    default one. `reads[c]` are the chunks read on connection c after the
    greeting, `commands[c]` its command lines, `texts` every text as it was on
    the wire (still dot-stuffed, without the final ".CRLF").
    """

    def __init__(self, pipelining: bool = True, script: Script | None = None) -> None:
        features = [b"raw.test", b"SIZE 1000000", b"8BITMIME"]
        features += [b"PIPELINING"] if pipelining else []
        lines = [b"250-" + f for f in features[:-1]] + [b"250 " + features[-1]]
        self.ehlo = b"\r\n".join(lines)
        self.script = script or (lambda connection, line: None)
        self.trickle = False
        self.reads: list[list[bytes]] = []
        self.commands: list[list[bytes]] = []
        self.texts: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> RawPeer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    def route(self) -> Route:
        return Route(f"raw:{self.port}", (Hop("127.0.0.1", self.port),))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        connection = len(self.reads)
        self.reads.append([])
        self.commands.append([])
        writer.write(b"220 raw.test ESMTP\r\n")
        state = _PeerState()
        while chunk := await reader.read(65536):
            self.reads[connection].append(chunk)
            state.buffer += chunk
            replies = self._answer_all(connection, state)
            if HANGUP in replies:
                break
            await self._send(writer, b"".join(r + b"\r\n" for r in replies if r != SILENT))
        writer.close()

    async def _send(self, writer: asyncio.StreamWriter, out: bytes) -> None:
        for piece in [out[i : i + 1] for i in range(len(out))] if self.trickle else [out]:
            writer.write(piece)
            await writer.drain()

    def _answer_all(self, connection: int, state: _PeerState) -> list[bytes]:
        replies = []
        while (line := state.next_line(self.texts)) is not None:
            if line != b".":
                self.commands[connection].append(line)
            reply = self.script(connection, line) or state.default_reply(line, self.ehlo)
            replies.append(reply)
            if reply == HANGUP:
                break
            state.in_text = line.upper() == b"DATA" and reply.startswith(b"354")
        return replies


class _PeerState:
    """One connection of a RawPeer: unread bytes, and where the transaction is."""

    def __init__(self) -> None:
        self.buffer = b""
        self.in_text = False
        self.accepted = 0

    def next_line(self, texts: list[bytes]) -> bytes | None:
        """The next complete command line, or b"." for a complete text (kept in `texts`)."""
        if self.in_text:
            end = (b"\r\n" + self.buffer).find(b"\r\n.\r\n")
            if end < 0:
                return None
            texts.append(self.buffer[:end])
            self.buffer, self.in_text = self.buffer[end + 3 :], False
            return b"."
        end = self.buffer.find(b"\r\n")
        if end < 0:
            return None
        line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
        return line

    def default_reply(self, line: bytes, ehlo: bytes) -> bytes:
        verb = line[:4].upper()
        if verb == b"RCPT":
            self.accepted += 1
            return b"250 2.1.5 ok"
        if verb == b"DATA":
            return b"354 go ahead" if self.accepted else b"503 5.5.1 no valid recipients"
        if verb in (b".", b"RSET", b"MAIL"):
            self.accepted = 0
        replies = {b"EHLO": ehlo, b"QUIT": b"221 bye", b".": b"250 2.0.0 queued"}
        return replies.get(verb, b"250 2.0.0 ok")


NO_SUCH_USER = b"550 5.1.1 no such user"


def refuse(replies: dict[bytes, bytes]) -> Script:
    """A script refusing RCPT TO of addresses starting with a key, with its reply."""

    def script(connection: int, line: bytes) -> bytes | None:
        if not line.startswith(b"RCPT TO:<"):
            return None
        return next((r for p, r in replies.items() if line[9:].startswith(p)), None)

    return script


def envelope(*rcpts: str, sender: str = "a@mdai.gov.kz", data: bytes = TEXT) -> list[bytes]:
    """The command lines of one transaction, as the relay sends them."""
    lines = [f"MAIL FROM:<{sender}> SIZE={len(data)}".encode()]
    return lines + [f"RCPT TO:<{r}>".encode() for r in rcpts] + [b"DATA"]


def group(*rcpts: str) -> bytes:
    return b"".join(line + b"\r\n" for line in envelope(*rcpts))


def test_dot_stuffing_doubles_leading_dots_and_ends_the_text() -> None:
    assert b"".join(dot_stuff(b".a\r\n..b\r\nc.\r\n.\r\n")) == b"..a\r\n...b\r\nc.\r\n..\r\n.\r\n"
    assert b"".join(dot_stuff(b"no final line end")) == b"no final line end\r\n.\r\n"
    assert b"".join(dot_stuff(b"a\r\n\r\n")) == b"a\r\n\r\n.\r\n"


async def test_mail_rcpts_and_data_go_out_in_one_write(make: Make) -> None:
    async with RawPeer() as peer:
        rcpts = ["a@example.org", "b@example.org", "c@example.org"]
        outcomes = await send(make(), peer.route(), rcpts)
        assert kinds(outcomes) == [("delivered", "2.0.0")] * 3
        # the peer answers what it has read: had the client waited for MAIL's reply,
        # the RCPTs and DATA could not have been in the same read as MAIL
        assert peer.reads[0][1] == group(*rcpts)
        assert peer.texts == [TEXT]


async def test_a_completed_transaction_is_not_followed_by_rset(make: Make) -> None:
    async with RawPeer() as peer:
        deliverer = make()
        for rcpt in ["a@example.org", "b@example.org"]:
            assert kinds(await send(deliverer, peer.route(), [rcpt])) == [("delivered", "2.0.0")]
        assert peer.commands == [
            [b"EHLO relay.test", *envelope("a@example.org"), *envelope("b@example.org")]
        ]
        assert peer.texts == [TEXT, TEXT]


async def test_pipelined_text_is_dot_stuffed_on_the_wire(make: Make, sink: Sink) -> None:
    data = b".one\r\n..two\r\n.\r\nthree\r\n"
    async with RawPeer() as peer:
        await send(make(), peer.route(), ["x@example.org"], data)
        assert peer.texts == [b"..one\r\n...two\r\n..\r\nthree\r\n"]
    assert kinds(await send(make(), route_to(sink), ["x@example.org"], data)) == [
        ("delivered", "2.0.0")
    ]
    assert (await sink.wait_for(1))[0].data == data


async def test_pipelined_replies_split_anywhere_are_read_in_order(make: Make) -> None:
    async with RawPeer(script=refuse({b"no": NO_SUCH_USER})) as peer:
        peer.trickle = True
        rcpts = ["a@example.org", "no1@example.org", "b@example.org", "no2@example.org"]
        outcomes = await send(make(), peer.route(), rcpts)
        assert kinds(outcomes) == [
            ("delivered", "2.0.0"),
            ("bounced", "5.1.1"),
            ("delivered", "2.0.0"),
            ("bounced", "5.1.1"),
        ]
        assert (outcomes[0].text, outcomes[1].text) == ("queued", "no such user")


async def test_one_refused_rcpt_in_a_group_leaves_the_others_delivered(
    make: Make, sink: Sink
) -> None:
    sink.rcpt_reply = lambda addr: "550 5.1.1 No such user" if addr.startswith("no") else None
    rcpts = ["nobody@example.org", "a@example.org", "b@example.org"]
    outcomes = await send(make(), route_to(sink), rcpts)
    assert kinds(outcomes) == [("bounced", "5.1.1"), ("delivered", "2.0.0"), ("delivered", "2.0.0")]
    got = await sink.wait_for(1)
    assert [m.rcpts for m in got] == [["a@example.org", "b@example.org"]] and got[0].data == TEXT


async def test_every_rcpt_refused_in_a_group_counts_only_the_refusals(make: Make) -> None:
    script = refuse({b"a": b"450 4.2.1 later", b"b": NO_SUCH_USER})
    async with RawPeer(script=script) as peer:
        deliverer = make()
        outcomes = await send(deliverer, peer.route(), ["a@example.org", "b@example.org"])
        # DATA got "503 5.5.1 no valid recipients", which decides nothing
        assert kinds(outcomes) == [("deferred", "4.2.1"), ("bounced", "5.1.1")]
        assert [o.text for o in outcomes] == ["later", "no such user"]
        assert kinds(await send(deliverer, peer.route(), ["c@example.org"])) == [
            ("delivered", "2.0.0")
        ]
        first, second = envelope("a@example.org", "b@example.org"), envelope("c@example.org")
        assert peer.commands == [[b"EHLO relay.test", *first, b"RSET", *second]]
        assert peer.texts == [TEXT]


async def test_a_354_without_accepted_rcpts_gets_an_empty_text(make: Make) -> None:
    def script(connection: int, line: bytes) -> bytes | None:
        if line == b"DATA":
            return b"354 go ahead"  # against RFC 2920 3.1, but seen in the wild
        return b"250 2.0.0 dropped" if line == b"." else refuse({b"": NO_SUCH_USER})(0, line)

    async with RawPeer(script=script) as peer:
        outcomes = await send(make(), peer.route(), ["a@example.org", "b@example.org"])
        assert kinds(outcomes) == [("bounced", "5.1.1"), ("bounced", "5.1.1")]
        assert peer.texts == [b""] and b"RSET" not in peer.commands[0]


async def test_a_refused_mail_in_a_group_decides_and_is_followed_by_rset(make: Make) -> None:
    def script(connection: int, line: bytes) -> bytes | None:
        if line.startswith(b"MAIL"):
            return b"553 5.7.1 sender not allowed"
        return b"503 5.5.1 need MAIL" if line.startswith((b"RCPT", b"DATA")) else None

    async with RawPeer(script=script) as peer:
        deliverer = make()
        outcomes = await send(deliverer, peer.route(), ["a@example.org", "b@example.org"])
        assert kinds(outcomes) == [("bounced", "5.7.1"), ("bounced", "5.7.1")]
        assert outcomes[0].text == "sender not allowed"
        await deliverer.close()
        first = envelope("a@example.org", "b@example.org")
        assert peer.commands == [[b"EHLO relay.test", *first, b"RSET", b"QUIT"]]
        assert peer.texts == []


async def test_a_refused_data_in_a_group_decides_the_accepted_rcpts(make: Make) -> None:
    script = refuse({b"no": NO_SUCH_USER})

    def refuse_data(connection: int, line: bytes) -> bytes | None:
        return b"451 4.3.0 try later" if line == b"DATA" else script(connection, line)

    async with RawPeer(script=refuse_data) as peer:
        deliverer = make()
        rcpts = ["a@example.org", "no@example.org"]
        assert kinds(await send(deliverer, peer.route(), rcpts)) == [
            ("deferred", "4.3.0"),
            ("bounced", "5.1.1"),
        ]
        peer.script = lambda connection, line: None
        assert kinds(await send(deliverer, peer.route(), ["a@example.org"])) == [
            ("delivered", "2.0.0")
        ]
        first, second = envelope(*rcpts), envelope("a@example.org")
        assert peer.commands == [[b"EHLO relay.test", *first, b"RSET", *second]]
        assert len(peer.reads) == 1 and peer.texts == [TEXT]


async def test_a_reused_session_the_peer_closed_meanwhile_is_replaced(make: Make) -> None:
    def script(connection: int, line: bytes) -> bytes | None:
        # the first connection hangs up when the second message starts, as a peer's
        # idle timeout firing while the relay writes would
        return HANGUP if connection == 0 and line.startswith(b"MAIL FROM:<b@x.org>") else None

    async with RawPeer(script=script) as peer:
        deliverer = make()
        await send(deliverer, peer.route(), ["a@example.org"])
        outcomes = await send(deliverer, peer.route(), ["b@example.org"], sender="b@x.org")
        assert kinds(outcomes) == [("delivered", "2.0.0")]
        assert peer.texts == [TEXT, TEXT]  # each message once
        assert [len(commands) for commands in peer.commands] == [1 + 3 + 1, 1 + 3]
        assert deliverer.open_sessions == 1 and sessions_gauge(deliverer) == 1


async def test_a_session_lost_after_the_text_is_not_retried(make: Make) -> None:
    texts = 0

    def script(connection: int, line: bytes) -> bytes | None:
        nonlocal texts
        texts += line == b"."
        return HANGUP if texts == 2 and line == b"." else None

    async with RawPeer(script=script) as peer:
        deliverer = make()
        await send(deliverer, peer.route(), ["a@example.org"])
        outcomes = await send(deliverer, peer.route(), ["b@example.org"])
        # the hop may have kept the text: deferred, and not sent again at once
        assert kinds(outcomes) == [("deferred", "4.4.2")]
        assert len(peer.reads) == 1 and peer.texts == [TEXT, TEXT]
        assert deliverer.open_sessions == 0


@pytest.mark.parametrize("silent", [(b"MAIL", b"RCPT", b"DATA"), (b"RCPT", b"DATA")])
async def test_a_group_without_replies_times_out_and_is_deferred(
    make: Make, silent: tuple[bytes, ...]
) -> None:
    def script(connection: int, line: bytes) -> bytes | None:
        return SILENT if line.startswith(silent) else None

    async with RawPeer(script=script) as peer:
        deliverer = make(command_timeout=0.3)
        outcomes = await send(deliverer, peer.route(), ["a@example.org", "b@example.org"])
        assert kinds(outcomes) == [("deferred", "4.4.2"), ("deferred", "4.4.2")]
        assert "timed out" in outcomes[0].text and deliverer.open_sessions == 0


async def test_a_421_in_a_group_defers_and_closes_the_session(make: Make) -> None:
    def script(connection: int, line: bytes) -> bytes | None:
        closing = connection == 0 and line.startswith(b"MAIL")
        return b"421 4.7.0 too busy, closing" if closing else None

    async with RawPeer(script=script) as peer:
        deliverer = make()
        outcomes = await send(deliverer, peer.route(), ["a@example.org"])
        assert kinds(outcomes) == [("deferred", "4.7.0")] and outcomes[0].code == 421
        assert kinds(await send(deliverer, peer.route(), ["a@example.org"])) == [
            ("delivered", "2.0.0")
        ]
        assert len(peer.reads) == 2 and peer.texts == [TEXT]


async def test_without_pipelining_commands_go_one_at_a_time(make: Make) -> None:
    async with RawPeer(pipelining=False, script=refuse({b"no": NO_SUCH_USER})) as peer:
        deliverer = make()
        rcpts = ["a@example.org", "no@example.org"]
        assert kinds(await send(deliverer, peer.route(), rcpts)) == [
            ("delivered", "2.0.0"),
            ("bounced", "5.1.1"),
        ]
        outcomes = await send(deliverer, peer.route(), ["no@example.org"])
        assert kinds(outcomes) == [("bounced", "5.1.1")]
        first, second = envelope(*rcpts), envelope("no@example.org")[:-1]  # no DATA
        assert peer.commands == [[b"EHLO relay.test", *first, *second, b"RSET"]]
        commands = [read for read in peer.reads[0] if read != TEXT + b".\r\n"]
        assert all(read.count(b"\r\n") == 1 for read in commands)
        assert peer.texts == [TEXT]


async def test_without_pipelining_a_refused_mail_sends_no_rcpt(make: Make) -> None:
    def script(connection: int, line: bytes) -> bytes | None:
        return b"553 5.7.1 sender not allowed" if line.startswith(b"MAIL") else None

    async with RawPeer(pipelining=False, script=script) as peer:
        deliverer = make()
        outcomes = await send(deliverer, peer.route(), ["a@example.org", "b@example.org"])
        assert kinds(outcomes) == [("bounced", "5.7.1"), ("bounced", "5.7.1")]
        await deliverer.close()
        assert peer.commands[0][1:] == [envelope()[0], b"RSET", b"QUIT"]


def test_pipelining_works_on_uvloop() -> None:
    """`ugem serve` runs on uvloop, whose transports keep the protocol's bound methods."""
    uvloop = require_module("uvloop", "uvloop is not installed")

    async def scenario() -> None:
        config = DeliveryConfig(connect_timeout=5.0, command_timeout=5.0)
        deliverer = Deliverer(config, "relay.test", Metrics(), FakeClock())
        try:
            async with RawPeer(script=refuse({b"no": NO_SUCH_USER})) as peer:
                peer.trickle = True
                rcpts = ["a@example.org", "no@example.org", "b@example.org"]
                outcomes = await send(deliverer, peer.route(), rcpts)
                assert kinds(outcomes) == [
                    ("delivered", "2.0.0"),
                    ("bounced", "5.1.1"),
                    ("delivered", "2.0.0"),
                ]
                assert peer.reads[0][1] == group(*rcpts) and peer.texts == [TEXT]
            tls_sink = await Sink.start(tls=True)
            try:
                outcomes = await send(deliverer, route_to(tls_sink), ["a@example.org"])
                assert kinds(outcomes) == [("delivered", "2.0.0")]
                assert (await tls_sink.wait_for(1))[0].tls
            finally:
                await tls_sink.stop()
        finally:
            await deliverer.close()

    uvloop.run(scenario())
