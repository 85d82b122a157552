"""MTA-STS (RFC 8461): parsing, the policy fetch and its cache, and what delivery does with it.

The policy host is a real HTTPS server on loopback (`tests.support.https_server`)
with a certificate for mta-sts.example.org from a private CA; the DNS answers
come from `FakeDns`, which the tests change as a domain's records would
change; time moves by a FakeClock. Next hops are sinks on loopback, on an MX
route built as the router builds one (`Route.mx_domain`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from relay.deliver.mta_sts import (
    MAX_AGE_LIMIT,
    MAX_POLICY_BYTES,
    RETRY_AFTER,
    MtaSts,
    StsPolicy,
    mx_matches,
    parse_policy,
    record_id,
)
from relay.deliver.routing import Hop, Route
from relay.deliver.transaction import Deliverer
from relay.deliver.trouble import RcptOutcome
from tests.support.https_server import HttpsServer
from tests.support.sink import Sink
from tests.support.tls_cert import TestCa, self_signed, server_context
from ugem.core.clock import FakeClock
from ugem.core.config import DeliveryConfig
from ugem.core.errors import DeliveryError, RouteFailure, StsError
from ugem.core.metrics import Metrics

DOMAIN = "example.org"
MX = "mx.example.org"
TXT_NAME = "_mta-sts.example.org"
POLICY_HOST = "mta-sts.example.org"
TEXT = b"From: a@mdai.gov.kz\r\nSubject: hi\r\n\r\nHello.\r\n"


def policy_text(mode: str = "enforce", mx: str = MX, max_age: int = 86400) -> str:
    return f"version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: {max_age}\r\n"


# -- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "texts",
    [
        ["v=STSv1; id=20160831085700Z;"],
        ["v=STSv1;id=20160831085700Z"],
        ["v=STSv1 ;\tid=20160831085700Z ; ext_1.a-b=x!y"],
        ["v=spf1 -all", "v=STSv1; id=20160831085700Z", "google-site-verification=abc"],
        ["v=STSv1; id=20160831085700Z; id=other"],  # the first id counts
    ],
)
def test_the_one_sts_record_gives_its_id(texts: list[str]) -> None:
    assert record_id(texts) == "20160831085700Z"


@pytest.mark.parametrize(
    "texts",
    [
        [],
        ["v=spf1 -all"],
        ["v=STSv1; id=1", "v=STSv1; id=2"],  # more than one: no policy (RFC 8461 3.1)
        ["v=STSv1; id=1", "v=STSv1; bogus"],
        ["v=STSv1;"],  # no id
        ["v=STSv1; id=" + "a" * 33],  # at most 32 characters
        ["v=STSv1; id=2024-01-01"],  # letters and digits only
        ["v=STSv1;; id=1"],
        ["v=STSv1; id=1; ext=a b"],
        ["v=STSv1 id=1"],
        ["V=STSv1; id=1"],
    ],
)
def test_no_valid_single_record_means_no_id(texts: list[str]) -> None:
    assert record_id(texts) is None


def test_a_policy_is_parsed_with_its_mx_patterns() -> None:
    text = (
        "version: STSv1\nmode: testing\nmx: MX1.Example.org.\nmx: *.backup.example.net\n"
        "max_age:604800\nx_extension: anything at all\n"
    )
    policy = parse_policy(text, DOMAIN, "id1")
    assert policy == StsPolicy(
        DOMAIN, "id1", "testing", ("mx1.example.org", "*.backup.example.net"), 604800
    )


def test_crlf_lines_and_repeated_fields_where_the_first_counts() -> None:
    text = policy_text("enforce") + "mode: testing\r\nmax_age: 5\r\n"
    policy = parse_policy(text, DOMAIN, "id1")
    assert (policy.mode, policy.max_age, policy.mx) == ("enforce", 86400, (MX,))


def test_mode_none_needs_no_mx_and_a_long_max_age_is_capped() -> None:
    policy = parse_policy("version: STSv1\nmode: none\nmax_age: 9999999999\n", DOMAIN, "id1")
    assert (policy.mode, policy.mx, policy.max_age) == ("none", (), MAX_AGE_LIMIT)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("mode: enforce\nmx: mx.example.org\nmax_age: 1\n", "version"),
        ("version: STSv2\nmode: enforce\nmx: mx.example.org\nmax_age: 1\n", "version"),
        ("version: STSv1\nmode: reject\nmx: mx.example.org\nmax_age: 1\n", "mode"),
        ("version: STSv1\nmode: Enforce\nmx: mx.example.org\nmax_age: 1\n", "mode"),
        ("version: STSv1\nmode: enforce\nmx: mx.example.org\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: -1\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 12345678901\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmax_age: 1\n", "no mx"),
        ("version: STSv1\nmode: testing\nmx: *.*.example.org\nmax_age: 1\n", "mx"),
        ("version: STSv1\nmode: testing\nmx: mx*.example.org\nmax_age: 1\n", "mx"),
        ("version: STSv1\nmode: testing\nmx: mx_1.example.org\nmax_age: 1\n", "mx"),
        ("version: STSv1\nmode: testing\nmx: \nmax_age: 1\n", "mx"),
        ("version: STSv1\nmode testing\nmx: mx.example.org\nmax_age: 1\n", "line 2"),
        ("<html><body>policy</body></html>", "line 1"),
    ],
)
def test_an_invalid_policy_is_refused_naming_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(StsError, match=complaint) as caught:
        parse_policy(text, DOMAIN, "id1")
    assert caught.value.result == "invalid"


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("*.example.com", "mail.example.com", True),  # RFC 8461 4.1
        ("*.example.com", "example.com", False),
        ("*.example.com", "foo.bar.example.com", False),
        ("*.example.com", "mail.example.com.evil.net", False),
        ("*.example.com", "mailexample.com", False),
        ("mx.example.com", "mx.example.com", True),
        ("mx.example.com", "a.mx.example.com", False),
        ("mx.example.com", "mx.example.co", False),
    ],
)
def test_mx_patterns_match_as_rfc_8461_says(pattern: str, host: str, matches: bool) -> None:
    assert mx_matches(pattern, host) is matches


def test_a_policy_allows_an_mx_host_in_any_case_with_or_without_the_final_dot() -> None:
    policy = StsPolicy(DOMAIN, "1", "enforce", ("mx.example.org", "*.mail.example.net"), 60)
    assert policy.allows("MX.Example.Org.") and policy.allows("a.MAIL.example.net")
    assert not policy.allows("mail.example.net") and not policy.allows("other.example.org")


# -- fetching and caching ----------------------------------------------------------------------


class FakeDns:
    """The TXT and address records the tests give; `failing` makes every TXT lookup fail."""

    def __init__(self) -> None:
        self.txt: dict[str, list[str]] = {}
        self.a: dict[str, list[str]] = {}
        self.failing = False
        self.queries: list[str] = []

    async def texts(self, name: str) -> list[str]:
        self.queries.append(name)
        if self.failing:
            raise RouteFailure(451, "4.4.3", f"DNS TXT lookup of {name} timed out")
        return self.txt.get(name, [])

    async def addresses(self, host: str) -> tuple[list[str], DeliveryError | None]:
        self.queries.append(host)
        return self.a.get(host, []), None


@pytest.fixture
def ca(tmp_path: Path) -> TestCa:
    return TestCa.create(tmp_path)


@pytest.fixture
async def https(ca: TestCa, tmp_path: Path) -> AsyncIterator[HttpsServer]:
    """The policy host: a certificate for mta-sts.example.org (and its address, so that a
    client following a redirect to it would be served) from `ca`, an enforce policy."""
    (tmp_path / "https").mkdir()
    context = server_context(*ca.issue(tmp_path / "https", POLICY_HOST, ["127.0.0.1"]))
    server = await HttpsServer.start("127.0.0.1", 0, context)
    server.serve(policy_text())
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def dns(https: HttpsServer) -> FakeDns:
    fake = FakeDns()
    fake.txt[TXT_NAME] = ["v=STSv1; id=1;"]
    fake.a[POLICY_HOST] = [https.host]
    return fake


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def sts(dns: FakeDns, clock: FakeClock, metrics: Metrics, ca: TestCa, https: HttpsServer) -> MtaSts:
    return MtaSts(dns, clock, metrics, str(ca.cert_path), port=https.port)


def fetches(metrics: Metrics, result: str) -> float:
    value = metrics.registry.get_sample_value("ugem_mta_sts_fetches_total", {"result": result})
    return value or 0.0


async def test_a_published_policy_is_fetched_over_verified_https(
    sts: MtaSts, https: HttpsServer, metrics: Metrics
) -> None:
    policy = await sts.policy(DOMAIN)
    assert policy == StsPolicy(DOMAIN, "1", "enforce", (MX,), 86400)
    assert https.requests == [("/.well-known/mta-sts.txt", f"{POLICY_HOST}:{https.port}")]
    assert fetches(metrics, "ok") == 1


async def test_without_a_txt_record_nothing_is_fetched(
    sts: MtaSts, dns: FakeDns, https: HttpsServer
) -> None:
    dns.txt.clear()
    assert await sts.policy(DOMAIN) is None
    assert https.requests == []


@pytest.mark.parametrize(
    ("status", "content_type", "body", "result"),
    [
        (404, "text/plain", "", "failed"),
        (500, "text/plain", policy_text(), "failed"),
        (200, "text/html", policy_text(), "invalid"),
        (200, "", policy_text(), "invalid"),
        (200, "text/plain", policy_text() + "x" * MAX_POLICY_BYTES, "invalid"),
        (200, "text/plain; charset=utf-8", "version: STSv1\n", "invalid"),
    ],
)
async def test_an_answer_that_is_not_a_policy_gives_none(
    sts: MtaSts,
    https: HttpsServer,
    metrics: Metrics,
    status: int,
    content_type: str,
    body: str,
    result: str,
) -> None:
    https.serve(body, content_type, status)
    assert await sts.policy(DOMAIN) is None
    assert fetches(metrics, result) == 1 and fetches(metrics, "ok") == 0


async def test_a_redirect_is_not_followed(
    sts: MtaSts, https: HttpsServer, metrics: Metrics
) -> None:
    https.serve("", status=301)
    https.headers["Location"] = f"https://{https.host}:{https.port}/elsewhere.txt"
    assert await sts.policy(DOMAIN) is None
    assert len(https.requests) == 1 and fetches(metrics, "failed") == 1


async def test_a_certificate_the_ca_did_not_sign_is_not_trusted(
    dns: FakeDns, clock: FakeClock, metrics: Metrics, ca: TestCa, tmp_path: Path
) -> None:
    (tmp_path / "self").mkdir()
    context = server_context(*self_signed(tmp_path / "self", POLICY_HOST))
    server = await HttpsServer.start("127.0.0.1", 0, context)
    server.serve(policy_text())
    try:
        sts = MtaSts(dns, clock, metrics, str(ca.cert_path), port=server.port)
        dns.a[POLICY_HOST] = [server.host]
        assert await sts.policy(DOMAIN) is None
        assert server.requests == [] and fetches(metrics, "failed") == 1
    finally:
        await server.stop()


async def test_a_certificate_for_another_name_is_not_trusted(
    sts: MtaSts, dns: FakeDns, https: HttpsServer, metrics: Metrics
) -> None:
    dns.txt["_mta-sts.example.net"] = ["v=STSv1; id=1;"]
    dns.a["mta-sts.example.net"] = [https.host]  # its server shows mta-sts.example.org's
    assert await sts.policy("example.net") is None
    assert https.requests == [] and fetches(metrics, "failed") == 1


async def test_a_policy_host_that_never_answers_is_given_up_after_the_timeout(
    dns: FakeDns, clock: FakeClock, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="relay.deliver.mta_sts")
    accepted: list[asyncio.StreamWriter] = []

    def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # accepts the connection, never starts TLS

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        sts = MtaSts(dns, clock, metrics, port=port, timeout=0.2)
        assert await sts.policy(DOMAIN) is None
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    (line,) = [r for r in caplog.records if getattr(r, "event", "") == "mta_sts_fetch"]
    assert "no policy within 0.2 s" in getattr(line, "fields", {})["error"]
    assert fetches(metrics, "failed") == 1


async def test_a_policy_host_without_an_address_gives_none(
    sts: MtaSts, dns: FakeDns, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="relay.deliver.mta_sts")
    dns.a.clear()
    assert await sts.policy(DOMAIN) is None
    (line,) = [r for r in caplog.records if getattr(r, "event", "") == "mta_sts_fetch"]
    fields = getattr(line, "fields", {})
    assert fields["result"] == "failed" and "no address for mta-sts.example.org" in fields["error"]


async def test_the_policy_is_reused_while_its_max_age_lasts(
    sts: MtaSts, https: HttpsServer, clock: FakeClock
) -> None:
    https.serve(policy_text(max_age=600))
    first = await sts.policy(DOMAIN)
    clock.advance(599)
    assert await sts.policy(DOMAIN) == first and len(https.requests) == 1
    clock.advance(1)
    assert await sts.policy(DOMAIN) == first and len(https.requests) == 2


async def test_a_new_txt_id_fetches_the_policy_again(
    sts: MtaSts, dns: FakeDns, https: HttpsServer
) -> None:
    assert (await sts.policy(DOMAIN) or pytest.fail()).mode == "enforce"
    https.serve(policy_text("testing"))
    assert (await sts.policy(DOMAIN) or pytest.fail()).mode == "enforce"  # same id: cached
    dns.txt[TXT_NAME] = ["v=STSv1; id=2;"]
    policy = await sts.policy(DOMAIN)
    assert policy is not None and (policy.id, policy.mode) == ("2", "testing")
    assert len(https.requests) == 2


async def test_a_failed_refetch_keeps_the_cached_policy_until_it_expires(
    sts: MtaSts, dns: FakeDns, https: HttpsServer, clock: FakeClock, metrics: Metrics
) -> None:
    https.serve(policy_text(max_age=1000))
    cached = await sts.policy(DOMAIN)
    dns.txt[TXT_NAME] = ["v=STSv1; id=2;"]
    https.serve("", status=503)
    clock.advance(500)
    assert await sts.policy(DOMAIN) == cached and fetches(metrics, "failed") == 1
    clock.advance(500)  # expired, and the new one still cannot be had
    assert await sts.policy(DOMAIN) is None


@pytest.mark.parametrize("dns_trouble", ["gone", "failing", "two records"])
async def test_a_cached_policy_holds_while_dns_shows_no_new_one(
    sts: MtaSts, dns: FakeDns, https: HttpsServer, clock: FakeClock, dns_trouble: str
) -> None:
    https.serve(policy_text(max_age=1000))
    cached = await sts.policy(DOMAIN)
    assert cached is not None
    if dns_trouble == "gone":
        dns.txt.clear()
    elif dns_trouble == "failing":
        dns.failing = True
    else:
        dns.txt[TXT_NAME] = ["v=STSv1; id=1;", "v=STSv1; id=2;"]
    clock.advance(999)
    assert await sts.policy(DOMAIN) == cached
    clock.advance(1)
    assert await sts.policy(DOMAIN) is None and len(https.requests) == 1


async def test_a_failed_fetch_is_not_repeated_for_the_same_id_before_a_while(
    sts: MtaSts, dns: FakeDns, https: HttpsServer, clock: FakeClock
) -> None:
    https.serve("", status=500)
    assert await sts.policy(DOMAIN) is None
    clock.advance(RETRY_AFTER - 1)
    assert await sts.policy(DOMAIN) is None and len(https.requests) == 1
    dns.txt[TXT_NAME] = ["v=STSv1; id=2;"]  # a new id is tried at once
    assert await sts.policy(DOMAIN) is None and len(https.requests) == 2
    https.serve(policy_text())
    clock.advance(RETRY_AFTER)
    assert await sts.policy(DOMAIN) is not None and len(https.requests) == 3


async def test_concurrent_lookups_of_a_domain_fetch_once(sts: MtaSts, https: HttpsServer) -> None:
    found = await asyncio.gather(*(sts.policy(DOMAIN) for _ in range(5)))
    assert len(set(found)) == 1 and found[0] is not None
    assert len(https.requests) == 1


# -- delivery under a policy -------------------------------------------------------------------

Make = Callable[..., Deliverer]


@pytest.fixture
async def make(sts: MtaSts, ca: TestCa, metrics: Metrics, clock: FakeClock) -> AsyncIterator[Make]:
    """Deliverer factory using `sts`, trusting `ca`; closed after the test."""
    made: list[Deliverer] = []

    def factory(**delivery: Any) -> Deliverer:
        delivery.setdefault("tls_ca_file", str(ca.cert_path))
        delivery.setdefault("connect_timeout", 5.0)
        delivery.setdefault("command_timeout", 10.0)
        made.append(Deliverer(DeliveryConfig(**delivery), "relay.test", metrics, clock, sts))
        return made[-1]

    yield factory
    for deliverer in made:
        await deliverer.close()


@pytest.fixture
async def good_sink(ca: TestCa, tmp_path: Path) -> AsyncIterator[Sink]:
    """A next hop with STARTTLS and a certificate for mx.example.org from the test CA."""
    (tmp_path / "mx").mkdir()
    sink = await Sink.start("127.0.0.1", 0, tls=server_context(*ca.issue(tmp_path / "mx", MX)))
    try:
        yield sink
    finally:
        await sink.stop()


def mx_route(*hops: tuple[Sink, str]) -> Route:
    """The route the router gives example.org: its MX hosts, each named."""
    return Route(
        "mx:example.org", tuple(Hop(s.host, s.port, name) for s, name in hops), mx_domain=DOMAIN
    )


async def send(deliverer: Deliverer, route: Route) -> RcptOutcome:
    (outcome,) = await deliverer.deliver(route, "a@mdai.gov.kz", ["x@example.org"], TEXT, "Q1")
    return outcome


def verdict(outcome: RcptOutcome) -> tuple[str, int, str]:
    return outcome.kind, outcome.code, outcome.status


def failures(metrics: Metrics, mode: str) -> float:
    value = metrics.registry.get_sample_value("ugem_mta_sts_failures_total", {"mode": mode})
    return value or 0.0


def reports(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        getattr(r, "fields", {})
        for r in caplog.records
        if getattr(r, "event", "") == "mta_sts_testing_failure" and r.levelno == logging.WARNING
    ]


async def test_enforce_sends_over_tls_verified_for_the_mx_host(
    make: Make, good_sink: Sink, metrics: Metrics
) -> None:
    outcome = await send(make(), mx_route((good_sink, MX)))
    assert verdict(outcome) == ("delivered", 250, "2.0.0")
    assert (await good_sink.wait_for(1))[0].tls and failures(metrics, "enforce") == 0


async def test_enforce_without_starttls_sends_nothing_and_the_mail_waits(
    make: Make, sink: Sink, metrics: Metrics
) -> None:
    heard: list[str] = []
    sink.mail_reply = heard.append
    outcome = await send(make(), mx_route((sink, MX)))
    assert verdict(outcome) == ("deferred", 451, "4.7.4")
    assert outcome.text == (
        "TLS required by the MTA-STS policy of example.org: next hop mx.example.org "
        "offers no STARTTLS"
    )
    assert heard == [] and sink.messages == [] and failures(metrics, "enforce") == 1


async def test_enforce_never_connects_to_an_mx_host_the_policy_does_not_name(
    make: Make, good_sink: Sink
) -> None:
    outcome = await send(make(), mx_route((good_sink, "mx.example.net")))
    assert verdict(outcome) == ("deferred", 451, "4.7.5")
    assert "next hop mx.example.net is not an MX host the policy allows" in outcome.text
    assert good_sink.connections == 0


async def test_enforce_moves_on_to_an_mx_host_that_qualifies(
    make: Make, sink: Sink, good_sink: Sink
) -> None:
    route = mx_route((sink, "mx.example.net"), (sink, MX), (good_sink, MX))
    assert verdict(await send(make(), route)) == ("delivered", 250, "2.0.0")
    assert sink.messages == [] and (await good_sink.wait_for(1))[0].tls


async def test_testing_mode_delivers_in_clear_and_reports_each_delivery(
    make: Make,
    sink: Sink,
    https: HttpsServer,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="relay.deliver.transaction")
    https.serve(policy_text("testing"))
    deliverer, route = make(), mx_route((sink, MX))
    assert verdict(await send(deliverer, route)) == ("delivered", 250, "2.0.0")
    assert verdict(await send(deliverer, route)) == ("delivered", 250, "2.0.0")  # reused
    got = await sink.wait_for(2)
    assert not got[0].tls and got[1].session == got[0].session
    assert failures(metrics, "testing") == 2 and failures(metrics, "enforce") == 0
    first = reports(caplog)[0]
    assert (first["queue_id"], first["domain"]) == ("Q1", DOMAIN)
    assert first["would_fail"].endswith("next hop mx.example.org offers no STARTTLS")


async def test_testing_mode_reports_nothing_when_the_policy_is_met(
    make: Make, good_sink: Sink, https: HttpsServer, metrics: Metrics
) -> None:
    https.serve(policy_text("testing"))
    assert verdict(await send(make(), mx_route((good_sink, MX))))[0] == "delivered"
    assert (await good_sink.wait_for(1))[0].tls and failures(metrics, "testing") == 0


async def test_testing_only_never_blocks_an_enforce_policy(
    make: Make, sink: Sink, metrics: Metrics
) -> None:
    deliverer = make(mta_sts="testing-only")
    outcome = await send(deliverer, mx_route((sink, "mx.example.net")))
    assert verdict(outcome) == ("delivered", 250, "2.0.0")
    assert failures(metrics, "testing") == 1 and failures(metrics, "enforce") == 0


@pytest.mark.parametrize("published", ["none", "absent"])
async def test_mode_none_or_no_policy_delivers_as_usual(
    make: Make, sink: Sink, https: HttpsServer, dns: FakeDns, metrics: Metrics, published: str
) -> None:
    if published == "none":
        https.serve("version: STSv1\nmode: none\nmax_age: 60\n")
    else:
        dns.txt.clear()
    assert verdict(await send(make(), mx_route((sink, MX)))) == ("delivered", 250, "2.0.0")
    assert failures(metrics, "testing") == failures(metrics, "enforce") == 0


async def test_off_and_configured_routes_look_nothing_up(
    make: Make, sink: Sink, dns: FakeDns
) -> None:
    assert verdict(await send(make(mta_sts="off"), mx_route((sink, MX))))[0] == "delivered"
    configured = Route(f"route:{sink.host}:{sink.port}", (Hop(sink.host, sink.port),))
    assert verdict(await send(make(), configured))[0] == "delivered"
    assert dns.queries == []


async def test_tls_required_domains_win_over_a_testing_policy(
    make: Make, sink: Sink, https: HttpsServer
) -> None:
    https.serve(policy_text("testing"))
    outcome = await send(make(tls_required_domains=[DOMAIN]), mx_route((sink, MX)))
    assert verdict(outcome) == ("deferred", 451, "4.7.4")
    assert outcome.text.startswith("TLS required for example.org:") and sink.messages == []


async def test_a_verified_session_is_reused_only_for_an_mx_host_the_policy_allows(
    make: Make, good_sink: Sink, https: HttpsServer, dns: FakeDns, clock: FakeClock
) -> None:
    deliverer, route = make(idle_timeout=600), mx_route((good_sink, MX))
    await send(deliverer, route)
    https.serve(policy_text(mx="*.example.net"))
    dns.txt[TXT_NAME] = ["v=STSv1; id=2;"]
    outcome = await send(deliverer, route)  # the pooled session to mx.example.org may not
    assert verdict(outcome) == ("deferred", 451, "4.7.5")
    assert len(good_sink.messages) == 1 and good_sink.connections == 1
