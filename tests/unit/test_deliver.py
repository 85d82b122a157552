"""The SMTP delivery client against a real in-process sink over loopback."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from relay.deliver import Deliverer
from relay.routing import Hop, Route
from relay.trouble import RcptOutcome
from tests.support.sink import Sink, server_tls_context
from ugem.clock import FakeClock
from ugem.config import DeliveryConfig
from ugem.metrics import Metrics

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
    caplog.set_level(logging.DEBUG, logger="relay.deliver")
    await send(make(), route_to(sink), ["a@x.org"], queue_id="QID42")
    attempts = [r for r in caplog.records if getattr(r, "event", "") == "attempt"]
    assert len(attempts) == 1 and attempts[0].levelno == logging.DEBUG
    fields = attempts[0].fields  # type: ignore[attr-defined]
    assert (fields["queue_id"], fields["hop"], fields["delivered"]) == (
        "QID42",
        f"{sink.host}:{sink.port}",
        1,
    )
