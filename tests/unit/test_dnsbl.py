"""The DNSBL lookups of the gateway's addresses (`relay.reputation.dnsbl`), on a private dnsmasq.

The name asked is the address reversed (octets for IPv4, nibbles for IPv6)
under the zone, and reads back to the address (hypothesis). The answer's
meaning: NXDOMAIN clear; 127.0.0.2 listed with the TXT reason; the lists'
error codes (127.255.255.0/24, 127.0.0.1, outside 127/8) unusable, never
listed; a zone whose server never answers unknown, never clear. Four zones
on one dnsmasq (one forwarded to a silent server) give each at once.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.reputation.dnsbl import DnsblAnswer, DnsblChecker, Listing, classify, query_name
from ugem.core.config import DeliveryConfig
from ugem.core.errors import ConfigError

V4, V6 = "203.0.113.9", "2001:db8::25"
LISTING, CLEAN, PICKY, SILENT = "bl.listing.test", "clean.test", "picky.test", "silent.test"
REASON = f"Listed in bl.listing.test: see https://listing.test/lookup?ip={V4}"
TIMEOUT = 0.5


def test_ipv4_octets_are_reversed() -> None:
    assert query_name(V4, "zen.spamhaus.org") == "9.113.0.203.zen.spamhaus.org"
    assert query_name(" 127.0.0.2 ", "zen.spamhaus.org.") == "2.0.0.127.zen.spamhaus.org"


def test_ipv6_nibbles_are_reversed() -> None:
    name = query_name(V6, "zen.spamhaus.org")
    assert name == "5.2.0.0." + "0.0.0.0." * 5 + "8.b.d.0.1.0.0.2.zen.spamhaus.org"


def test_a_name_that_is_no_address_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        query_name("gw.example.kz", "zen.spamhaus.org")


def _back(name: str, zone: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address a query name asks about (its labels before the zone, reversed)."""
    labels = name.removesuffix("." + zone).split(".")[::-1]
    if len(labels) == 4:
        return ipaddress.IPv4Address(".".join(labels))
    assert len(labels) == 32 and all(len(nibble) == 1 for nibble in labels)
    text = "".join(labels)
    return ipaddress.IPv6Address(":".join(text[i : i + 4] for i in range(0, 32, 4)))


@given(st.ip_addresses(), st.sampled_from(["zen.spamhaus.org", "bl.spamcop.net", "a.b.c.d"]))
def test_the_name_reads_back_to_the_address(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, zone: str
) -> None:
    name = query_name(str(ip), zone)
    assert name.endswith("." + zone)
    assert _back(name, zone) == ip
    assert len(name.removesuffix("." + zone).split(".")) == (4 if ip.version == 4 else 32)


@pytest.mark.parametrize(
    ("codes", "state", "why"),
    [
        ((), Listing.CLEAR, ""),
        (("127.0.0.2",), Listing.LISTED, ""),
        (("127.0.0.4", "127.0.0.10"), Listing.LISTED, ""),
        (("127.0.0.2", "127.255.255.254"), Listing.LISTED, ""),  # a real code among them
        (("127.255.255.254",), Listing.UNUSABLE, "public/open resolver"),
        (("127.255.255.252",), Listing.UNUSABLE, "typing error in the DNSBL name"),
        (("127.255.255.255",), Listing.UNUSABLE, "excessive number of queries"),
        (("127.255.255.7",), Listing.UNUSABLE, "an error code of the list, not a listing"),
        (("127.0.0.1",), Listing.UNUSABLE, "never a listing (RFC 5782 5)"),
        (("192.0.2.80",), Listing.UNUSABLE, "outside 127.0.0.0/8"),
    ],
)
def test_what_the_codes_mean(codes: tuple[str, ...], state: Listing, why: str) -> None:
    found, reason = classify(codes)
    assert found == state
    assert why in reason and (reason == "") == (why == "")


@given(st.lists(st.ip_addresses(v=4).map(str), max_size=4))
def test_an_error_code_alone_is_never_a_listing(codes: list[str]) -> None:
    state, _ = classify(codes)
    real = [c for c in codes if classify([c])[0] == Listing.LISTED]
    assert (state == Listing.LISTED) == bool(real)
    for code in real:
        assert code.startswith("127.") and not code.startswith("127.255.255.")


@pytest.fixture
def zones(dns_server: Any, silent_dns: Any) -> Any:
    """bl.listing.test lists both addresses (v4 with a TXT reason); picky.test refuses us;
    clean.test has nothing; silent.test goes to a server that never answers."""
    return dns_server(
        a={
            query_name(V4, LISTING): ["127.0.0.2"],
            query_name(V6, LISTING): ["127.0.0.4", "127.0.0.10"],
            query_name(V4, PICKY): ["127.255.255.254"],
            query_name(V6, PICKY): ["127.255.255.254"],
        },
        txt={query_name(V4, LISTING): REASON},
        forward={SILENT: silent_dns.address},
    )


def checker(dns: Any) -> DnsblChecker:
    return DnsblChecker(DeliveryConfig(dns_servers=[dns.address], dns_timeout=30.0), TIMEOUT)


async def test_each_address_on_each_zone_in_order(zones: Any) -> None:
    started = time.monotonic()
    answers = await checker(zones).check([V4, V6], [LISTING, CLEAN, PICKY, SILENT])
    assert time.monotonic() - started < 4 * TIMEOUT  # concurrent, each bounded by the timeout
    assert [(a.address, a.zone, a.state) for a in answers] == [
        (V4, LISTING, Listing.LISTED), (V4, CLEAN, Listing.CLEAR),
        (V4, PICKY, Listing.UNUSABLE), (V4, SILENT, Listing.UNKNOWN),
        (V6, LISTING, Listing.LISTED), (V6, CLEAN, Listing.CLEAR),
        (V6, PICKY, Listing.UNUSABLE), (V6, SILENT, Listing.UNKNOWN),
    ]  # fmt: skip
    listed, clear, picky, silent = answers[:4]
    assert listed == DnsblAnswer(V4, LISTING, Listing.LISTED, REASON, ("127.0.0.2",))
    assert clear == DnsblAnswer(V4, CLEAN, Listing.CLEAR, "", ())
    assert picky.codes == ("127.255.255.254",)
    assert "127.255.255.254: query via a public/open resolver" in picky.reason
    assert silent.codes == () and silent.reason == f"A {query_name(V4, SILENT)}: timed out"
    v6 = answers[4]
    assert sorted(v6.codes) == ["127.0.0.10", "127.0.0.4"] and v6.reason == ""  # no TXT
    asked = zones.log_text()
    assert f"query[A] {query_name(V6, LISTING)}" in asked
    assert f"query[TXT] {query_name(V4, LISTING)}" in asked  # only the listed ask for TXT
    assert f"query[TXT] {query_name(V4, PICKY)}" not in asked


async def test_a_resolver_that_never_answers_leaves_everything_unknown(silent_dns: Any) -> None:
    answers = await checker(silent_dns).check([V4], [LISTING, CLEAN])
    assert [(a.state, a.reason) for a in answers] == [
        (Listing.UNKNOWN, f"A {query_name(V4, LISTING)}: timed out"),
        (Listing.UNKNOWN, f"A {query_name(V4, CLEAN)}: timed out"),
    ]


async def test_an_address_that_is_no_ip_is_unknown_not_an_exception(zones: Any) -> None:
    [answer] = await checker(zones).check(["gw.example.kz"], [LISTING])
    assert answer.state == Listing.UNKNOWN and answer.reason.startswith("not an IP address")


def test_a_dns_server_that_is_no_address_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"delivery\.dns_servers"):
        DnsblChecker(DeliveryConfig(dns_servers=["resolver.example"]), TIMEOUT)
