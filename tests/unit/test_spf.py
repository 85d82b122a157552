"""relay.inbound.spf against records served by a private dnsmasq: every result, the RFC 7208 limits.

The cases come from the RFC 7208 test suite that pyspf ships
(sdgathman/pyspf, test/rfc7208-tests.yml); each test names the section and
the case it reproduces, with that case's zone data (the suite's "SPF" records
are served as TXT, as RFC 7208 requires). temperror uses a DNS server that
never answers (`tests.support.silent_dns`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from relay.dns import AuthDns
from relay.inbound.spf import MAX_DNS_TERMS, MAX_VOID_LOOKUPS, SpfChecker, SpfResult
from tests.support.silent_dns import SilentDns
from ugem.core.config import DeliveryConfig

# Zone data of the cases below, merged (the names do not clash).
TXT = {
    # Record lookup
    "txtonly.example.net": "v=spf1 -all",
    # Selecting records
    "example1.com": "v=spf1",
    "example3.com": ["v=spf10", "v=spf1 mx"],
    "example6.com": ["v=spf1 -all", "V=sPf1 +all"],
    "example9.com": "v=SpF1 ~all",
    # Record evaluation
    "t1.example.com": "v=spf1 ip4:1.2.3.4 -all moo",
    "t7.example.com": "v=spf1 ip4:1.2.3.4",
    # Processing limits
    "e1.example.com": "v=spf1 ip4:1.1.1.1 redirect=e1.example.com",
    "e4.example.com": "v=spf1 mx",
    "e8.example.com": "v=spf1 a include:inc.example.com ip4:1.2.3.4 mx -all",
    "inc.example.com": "v=spf1 a a a a a a a a",
    "e9.example.com": "v=spf1 a include:inc.example.com a ip4:1.2.3.4 -all",
    "e11.example.com": "v=spf1 a:err.example.com a:err1.example.com a:err2.example.com ?all",
    "e12.example.com": "v=spf1 a:err.example.com a:err1.example.com ?all",
    # Not from the suite: a HELO identity with a policy of its own
    "helo.example.org": "v=spf1 a -all",
}
A = {
    "mail.example1.com": ["1.2.3.4"],
    "mail.example.com": ["1.2.3.4"],
    "e1.example.com": ["1.2.3.6"],
    "e4.example.com": ["1.2.3.5"],
    "e8.example.com": ["1.2.3.4"],
    "inc.example.com": ["1.2.3.10"],
    "e9.example.com": ["1.2.3.21"],
    "helo.example.org": ["192.0.2.7"],
}
MX = {
    "example3.com": [(0, "mail.example1.com")],
    "e4.example.com": [(p, "mail.example.com") for p in range(10)] + [(10, "e4.example.com")],
}


@pytest.fixture
async def checker(dns_server: Any) -> SpfChecker:
    dns = await dns_server(txt=TXT, a=A, mx=MX)
    return SpfChecker(AuthDns(DeliveryConfig(dns_servers=[dns.address], dns_timeout=2.0)))


async def check(checker: SpfChecker, host: str, mailfrom: str, helo: str) -> SpfResult:
    deadline = asyncio.get_running_loop().time() + 10
    return await checker.check(host, mailfrom, helo, deadline)


@pytest.mark.parametrize(
    ("case", "host", "mailfrom", "helo", "expected"),
    [
        ("Selecting records: nospace2", "1.2.3.4", "foo@example3.com", "mail.example1.com", "pass"),
        (
            "Record lookup: txtonly",
            "1.2.3.4",
            "foo@txtonly.example.net",
            "mail.example.net",
            "fail",
        ),
        ("Selecting records: case-insensitive", "1.2.3.4", "foo@example9.com", "x", "softfail"),
        (
            "Selecting records: empty",
            "1.2.3.4",
            "foo@example1.com",
            "mail1.example1.com",
            "neutral",
        ),
        ("Record evaluation: default-result", "1.2.3.5", "foo@t7.example.com", "x", "neutral"),
        ("Selecting records: nospf", "1.2.3.4", "foo@mail.example1.com", "x", "none"),
        ("Initial processing: helo-not-fqdn", "1.2.3.5", "", "A2345678", "none"),
        ("Selecting records: multitxt2", "1.2.3.4", "foo@example6.com", "x", "permerror"),
        (
            "Record evaluation: detect-errors-anywhere",
            "1.2.3.4",
            "foo@t1.example.com",
            "x",
            "permerror",
        ),
    ],
)
async def test_results_of_the_rfc7208_suite(
    checker: SpfChecker, case: str, host: str, mailfrom: str, helo: str, expected: str
) -> None:
    got = await check(checker, host, mailfrom, helo)
    assert got.result == expected, f"{case}: {got}"


@pytest.mark.parametrize(
    ("case", "mailfrom", "expected", "why"),
    [
        ("Processing limits: include-at-limit", "foo@e8.example.com", "pass", ""),
        (
            "Processing limits: include-over-limit",
            "foo@e9.example.com",
            "permerror",
            "DNS-querying",
        ),
        ("Processing limits: redirect-loop", "foo@e1.example.com", "permerror", "DNS-querying"),
        ("Processing limits: void-at-limit", "foo@e12.example.com", "neutral", ""),
        ("Processing limits: void-over-limit", "foo@e11.example.com", "permerror", "Void lookup"),
        ("Processing limits: mx-limit", "foo@e4.example.com", "permerror", "MX records"),
    ],
)
async def test_processing_limits_of_rfc7208_4_6_4(
    checker: SpfChecker, case: str, mailfrom: str, expected: str, why: str
) -> None:
    host = "1.2.3.5" if "mx-limit" in case else "1.2.3.4"
    got = await check(checker, host, mailfrom, "mail.example.com")
    assert got.result == expected, f"{case}: {got}"
    assert why in got.reason, f"{case}: {got.reason}"


def test_the_limits_are_those_of_rfc7208() -> None:
    assert (MAX_DNS_TERMS, MAX_VOID_LOOKUPS) == (10, 2)


async def test_mail_from_identity_is_reported_with_its_domain(checker: SpfChecker) -> None:
    got = await check(checker, "1.2.3.4", "foo@example3.com", "mail.example1.com")
    assert got == SpfResult("pass", "mailfrom", "foo@example3.com", "example3.com", got.reason)


async def test_null_sender_is_checked_on_the_helo_identity(checker: SpfChecker) -> None:
    passed = await check(checker, "192.0.2.7", "", "helo.example.org")
    assert (passed.result, passed.identity, passed.value, passed.domain) == (
        "pass",
        "helo",
        "helo.example.org",
        "helo.example.org",
    )
    failed = await check(checker, "192.0.2.8", "", "helo.example.org")
    assert failed.result == "fail"


async def test_no_identity_at_all_is_none(checker: SpfChecker) -> None:
    assert (await check(checker, "1.2.3.4", "", "")).result == "none"


async def test_dns_timeout_is_temperror(silent_dns: SilentDns) -> None:
    """Record lookup: alltimeout (every query of the domain times out)."""
    config = DeliveryConfig(dns_servers=[silent_dns.address], dns_timeout=0.3)
    checker = SpfChecker(AuthDns(config))
    started = time.monotonic()
    got = await check(checker, "1.2.3.4", "foo@alltimeout.example.net", "mail.example.net")
    assert got.result == "temperror"
    assert "timed out" in got.reason
    assert time.monotonic() - started < 2.0


async def test_the_deadline_bounds_the_whole_check(silent_dns: SilentDns) -> None:
    checker = SpfChecker(AuthDns(DeliveryConfig(dns_servers=[silent_dns.address])))
    started = time.monotonic()
    deadline = asyncio.get_running_loop().time() + 0.3  # dns_timeout is 5 s
    got = await checker.check("1.2.3.4", "foo@alltimeout.example.net", "x.example", deadline)
    assert got.result == "temperror"
    assert time.monotonic() - started < 2.0
