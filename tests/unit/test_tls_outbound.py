"""Outbound TLS: `[delivery] tls_required_domains` against sinks with and without STARTTLS.

Sinks on loopback present certificates from a private CA made for the test
(`tests.support.tls_cert.TestCa`, named by `tls_ca_file`), self-signed ones,
or none; the hop's name the certificate must match is `Hop.name`, as the
router sets it from the MX host.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from relay.deliver.routing import Hop, Route
from relay.deliver.transaction import Deliverer
from relay.deliver.trouble import RcptOutcome
from relay.tls import RequiredTls
from tests.support.sink import Sink
from tests.support.tls_cert import TestCa, server_context
from ugem.core.clock import FakeClock
from ugem.core.config import DeliveryConfig, load_config
from ugem.core.errors import ConfigError
from ugem.core.metrics import Metrics

MX = "mx.example.org"
TEXT = b"From: a@mdai.gov.kz\r\nSubject: hi\r\n\r\nHello.\r\n"
Make = Callable[..., Deliverer]


@pytest.fixture
def ca(tmp_path: Path) -> TestCa:
    return TestCa.create(tmp_path)


@pytest.fixture
async def make(ca: TestCa) -> AsyncIterator[Make]:
    """Deliverer factory requiring TLS for example.org, trusting `ca`; closed after the test."""
    made: list[Deliverer] = []

    def factory(**delivery: Any) -> Deliverer:
        delivery.setdefault("tls_required_domains", ["example.org"])
        delivery.setdefault("tls_ca_file", str(ca.cert_path))
        delivery.setdefault("connect_timeout", 5.0)
        delivery.setdefault("command_timeout", 10.0)
        config = DeliveryConfig(**delivery)
        made.append(Deliverer(config, "relay.test", Metrics(), FakeClock()))
        return made[-1]

    yield factory
    for deliverer in made:
        await deliverer.close()


async def ca_sink(ca: TestCa, directory: Path, name: str = MX) -> Sink:
    directory.mkdir()
    return await Sink.start("127.0.0.1", 0, tls=server_context(*ca.issue(directory, name)))


@pytest.fixture
async def good_sink(ca: TestCa, tmp_path: Path) -> AsyncIterator[Sink]:
    """A next hop with STARTTLS and a certificate for mx.example.org from the test CA."""
    sink = await ca_sink(ca, tmp_path / "good")
    try:
        yield sink
    finally:
        await sink.stop()


def route_to(*sinks: Sink, name: str = MX) -> Route:
    hops = tuple(Hop(s.host, s.port, name) for s in sinks)
    return Route(f"route:{hops[0]}", hops)


def mail_commands(sink: Sink) -> list[str]:
    """Record every MAIL FROM the sink hears."""
    heard: list[str] = []

    def record(address: str) -> None:
        heard.append(address)

    sink.mail_reply = record
    return heard


async def send(deliverer: Deliverer, route: Route, rcpts: list[str]) -> list[RcptOutcome]:
    outcomes = await deliverer.deliver(route, "a@mdai.gov.kz", rcpts, TEXT, "Q1")
    assert [o.rcpt for o in outcomes] == rcpts
    return outcomes


def verdict(outcome: RcptOutcome) -> tuple[str, int, str]:
    return outcome.kind, outcome.code, outcome.status


async def test_a_hop_without_starttls_gets_nothing_and_the_mail_waits(
    make: Make, sink: Sink
) -> None:
    heard = mail_commands(sink)
    (outcome,) = await send(make(), route_to(sink), ["x@example.org"])
    assert verdict(outcome) == ("deferred", 451, "4.7.4")
    assert outcome.text == f"TLS required for example.org: next hop {MX} offers no STARTTLS"
    assert heard == [] and sink.messages == []


async def test_a_hop_with_a_certificate_from_the_ca_gets_the_mail_over_tls(
    make: Make, good_sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="relay.deliver.transaction")
    (outcome,) = await send(make(), route_to(good_sink), ["x@example.org"])
    assert verdict(outcome) == ("delivered", 250, "2.0.0")
    got = (await good_sink.wait_for(1))[0]
    assert got.tls and got.data == TEXT
    (attempt,) = [r for r in caplog.records if getattr(r, "event", "") == "attempt"]
    fields = getattr(attempt, "fields", {})
    assert fields["verified"] is True and fields["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert fields["tls_cipher"]


async def test_a_self_signed_certificate_is_not_trusted_and_not_retried_in_clear(
    make: Make, tls_sink: Sink
) -> None:
    heard = mail_commands(tls_sink)
    (outcome,) = await send(make(), route_to(tls_sink), ["x@example.org"])
    assert verdict(outcome) == ("deferred", 451, "4.7.5")
    assert outcome.text.startswith(f"TLS required for example.org: next hop {MX}: certificate")
    assert "not trusted" in outcome.text
    assert heard == [] and tls_sink.messages == [] and tls_sink.connections == 1


async def test_a_certificate_for_another_name_is_not_trusted(
    make: Make, ca: TestCa, tmp_path: Path
) -> None:
    sink = await ca_sink(ca, tmp_path / "other", name="other.example.net")
    try:
        (outcome,) = await send(make(), route_to(sink), ["x@example.org"])
        assert verdict(outcome) == ("deferred", 451, "4.7.5")
        assert "Hostname mismatch" in outcome.text and sink.messages == []
    finally:
        await sink.stop()


async def test_the_next_hop_is_tried_when_one_cannot_give_verified_tls(
    make: Make, sink: Sink, good_sink: Sink
) -> None:
    (outcome,) = await send(make(), route_to(sink, good_sink), ["x@example.org"])
    assert verdict(outcome) == ("delivered", 250, "2.0.0")
    assert sink.messages == [] and (await good_sink.wait_for(1))[0].tls


async def test_other_domains_of_the_same_message_still_go_in_clear(make: Make, sink: Sink) -> None:
    outcomes = await send(make(), route_to(sink), ["x@example.org", "y@other.org"])
    assert [verdict(o) for o in outcomes] == [
        ("deferred", 451, "4.7.4"),
        ("delivered", 250, "2.0.0"),
    ]
    got = (await sink.wait_for(1))[0]
    assert got.rcpts == ["y@other.org"] and not got.tls


async def test_a_plain_pooled_session_never_carries_a_required_recipient(
    make: Make, good_sink: Sink
) -> None:
    deliverer = make(starttls="never")  # required domains use TLS whatever this says
    route = route_to(good_sink)
    await send(deliverer, route, ["y@other.org"])
    await send(deliverer, route, ["x@example.org"])
    first, second = await good_sink.wait_for(2)
    assert (first.tls, second.tls) == (False, True)
    assert second.session == 2 and good_sink.connections == 2


async def test_a_verified_session_is_reused_for_required_recipients(
    make: Make, good_sink: Sink
) -> None:
    deliverer = make()
    route = route_to(good_sink)
    for rcpt in ("x@example.org", "y@sub.example.org", "z@example.org"):
        await send(deliverer, route, [rcpt])
    got = await good_sink.wait_for(3)
    assert all(m.tls for m in got) and good_sink.connections == 1


def test_a_domain_entry_matches_itself_and_a_dotted_one_its_subdomains() -> None:
    policy = RequiredTls.of(["Example.ORG.", ".gov.test"])
    assert policy.requires("example.org") and policy.requires("EXAMPLE.org.")
    assert not policy.requires("mail.example.org") and not policy.requires("badexample.org")
    assert policy.requires("a.gov.test") and policy.requires("b.a.gov.test")
    assert not policy.requires("gov.test") and not policy.requires("xgov.test")
    assert not RequiredTls.of([])


def test_the_config_keeps_the_dot_and_names_a_bad_entry() -> None:
    env = {"UGEM_DELIVERY_TLS_REQUIRED_DOMAINS": '["Example.org", ".Gov.Test"]'}
    assert load_config(None, env).delivery.tls_required_domains == ["example.org", ".gov.test"]
    with pytest.raises(ConfigError, match="UGEM_DELIVERY_TLS_REQUIRED_DOMAINS"):
        load_config(None, {"UGEM_DELIVERY_TLS_REQUIRED_DOMAINS": '["not a domain"]'})


def test_an_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    config = DeliveryConfig(tls_ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match=r"delivery\.tls_ca_file"):
        Deliverer(config, "relay.test", Metrics(), FakeClock())
