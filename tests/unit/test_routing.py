"""Routing: configured routes, connection servers, and MX/A/AAAA from a private dnsmasq."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relay.deliver.routing import Hop, Route, Router
from tests.support.connections import plain
from tests.support.dnsmasq import StartDns
from ugem.core.clock import FakeClock
from ugem.core.config import DeliveryConfig
from ugem.core.errors import ConfigError, RouteFailure
from ugem.core.registry import Registry
from ugem.core.store.sqlite import SqliteStore

PORT = 2599  # smtp_port of hops found by MX or connection servers


def closed_port() -> int:
    """A UDP port on 127.0.0.1 nobody listens on (a resolver that never answers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    store = SqliteStore(tmp_path / "registry.db")
    await store.add(
        plain(
            "mdai.gov.kz",
            "10.1.0.0/24",
            "127.0.0.3",
            "127.0.0.2",
            "2001:db8::25",
            domains=("mdai.gov.kz", "mail.mdai.gov.kz"),
        )
    )
    await store.add(plain("nets.gov.kz", "10.2.0.0/24", "2001:db8:1::/64"))
    reg = Registry(store, FakeClock())
    await reg.sync()
    try:
        yield reg
    finally:
        await store.close()


def router(registry: Registry, clock: FakeClock | None = None, **delivery: Any) -> Router:
    delivery.setdefault("dns_servers", [f"127.0.0.1:{closed_port()}"])
    delivery.setdefault("dns_timeout", 0.5)
    config = DeliveryConfig(smtp_port=PORT, **delivery)
    return Router(registry, config, clock or FakeClock())


async def failure(router: Router, domain: str) -> RouteFailure:
    with pytest.raises(RouteFailure) as caught:
        await router.route(domain)
    return caught.value


async def test_a_configured_route_overrides_everything_even_a_connected_domain(
    registry: Registry,
) -> None:
    r = router(registry, routes={"mdai.gov.kz": "127.0.0.1:2526", "example.org": "127.0.0.1:2527"})
    assert await r.route("MDAI.gov.kz.") == Route("route:127.0.0.1:2526", (Hop("127.0.0.1", 2526),))
    assert await r.route("example.org") == Route("route:127.0.0.1:2527", (Hop("127.0.0.1", 2527),))
    assert str(Hop("127.0.0.1", 2526)) == "127.0.0.1:2526"


async def test_a_connected_domain_goes_to_its_servers_in_order_without_networks(
    registry: Registry,
) -> None:
    r = router(registry)
    expected = Route(
        "conn:mdai.gov.kz",
        (Hop("127.0.0.3", PORT), Hop("127.0.0.2", PORT), Hop("2001:db8::25", PORT)),
    )
    assert await r.route("mdai.gov.kz") == expected
    assert await r.route("Mail.MDAI.gov.kz") == expected  # another domain of the connection
    assert str(expected.hops[2]) == f"[2001:db8::25]:{PORT}"


async def test_a_connection_with_only_networks_is_deferred(registry: Registry) -> None:
    failed = await failure(router(registry), "nets.gov.kz")
    assert (failed.code, failed.status, failed.permanent) == (451, "4.4.4", False)
    assert "no deliverable server address" in failed.text


@pytest.mark.parametrize("domain", ["[127.0.0.1]", "127.0.0.1", "[IPv6:::1]", "bad..domain", ""])
async def test_ip_literals_and_malformed_domains_are_not_routed(
    registry: Registry, domain: str
) -> None:
    failed = await failure(router(registry), domain)
    assert (failed.code, failed.status, failed.permanent) == (550, "5.1.2", True)


async def test_mx_hosts_by_preference_random_among_equals(
    registry: Registry, dns_server: StartDns
) -> None:
    dns = dns_server(
        mx={
            "ext.example": [
                (20, "mx2.ext.example"),
                (10, "mx1.ext.example"),
                (10, "mx1b.ext.example"),
            ]
        },
        a={
            "mx1.ext.example": ["127.0.0.9"],
            "mx1b.ext.example": ["127.0.0.10"],
            "mx2.ext.example": ["127.0.0.11"],
        },
        aaaa={"mx2.ext.example": ["::1"]},
    )
    r = router(registry, dns_servers=[dns.address])
    firsts = set()
    for _ in range(40):
        route = await r.route("ext.example")
        assert route.key == "mx:ext.example"
        hosts = [hop.host for hop in route.hops]
        assert sorted(hosts[:2]) == ["127.0.0.10", "127.0.0.9"]
        assert hosts[2:] == ["127.0.0.11", "::1"]
        assert {hop.port for hop in route.hops} == {PORT}
        firsts.add(hosts[0])
    assert firsts == {"127.0.0.9", "127.0.0.10"}


async def test_mx_hosts_without_address_are_skipped(
    registry: Registry, dns_server: StartDns
) -> None:
    dns = dns_server(
        mx={"ext.example": [(5, "gone.ext.example"), (10, "mx.ext.example")]},
        a={"mx.ext.example": ["127.0.0.9"]},
    )
    route = await router(registry, dns_servers=[dns.address]).route("ext.example")
    assert route.hops == (Hop("127.0.0.9", PORT),)


async def test_no_mx_means_the_domain_itself_implicit_mx(
    registry: Registry, dns_server: StartDns
) -> None:
    dns = dns_server(a={"plain.example": ["127.0.0.12"]})
    route = await router(registry, dns_servers=[dns.address]).route("plain.example")
    assert route == Route("mx:plain.example", (Hop("127.0.0.12", PORT),))


async def test_null_mx_bounces(registry: Registry, dns_server: StartDns) -> None:
    dns = dns_server(mx={"null.example": [(0, ".")]})
    failed = await failure(router(registry, dns_servers=[dns.address]), "null.example")
    assert (failed.code, failed.status, failed.permanent) == (556, "5.1.10", True)


async def test_nxdomain_bounces(registry: Registry, dns_server: StartDns) -> None:
    dns = dns_server(a={"other.example": ["127.0.0.9"]}, nxdomain=["gone.example"])
    failed = await failure(router(registry, dns_servers=[dns.address]), "gone.example")
    assert (failed.code, failed.status, failed.permanent) == (550, "5.1.2", True)


async def test_no_mx_and_no_address_bounces(registry: Registry, dns_server: StartDns) -> None:
    dns = dns_server(txt={"textonly.example": ["v=spf1 -all"]})
    failed = await failure(router(registry, dns_servers=[dns.address]), "textonly.example")
    assert (failed.code, failed.status, failed.permanent) == (550, "5.4.4", True)


async def test_mx_hosts_that_do_not_resolve_defer(registry: Registry, dns_server: StartDns) -> None:
    dns = dns_server(mx={"ext.example": [(10, "nowhere.ext.example")]})
    failed = await failure(router(registry, dns_servers=[dns.address]), "ext.example")
    assert (failed.code, failed.status, failed.permanent) == (451, "4.4.3", False)
    assert "nowhere.ext.example" in failed.text


async def test_a_resolver_that_does_not_answer_defers(registry: Registry) -> None:
    failed = await failure(router(registry, dns_timeout=0.3), "ext.example")
    assert (failed.code, failed.status, failed.permanent) == (451, "4.4.3", False)


async def test_answers_are_cached_for_their_ttl_on_the_injected_clock(
    registry: Registry, dns_server: StartDns
) -> None:
    dns = dns_server(
        mx={"ext.example": [(10, "mx.ext.example")]}, a={"mx.ext.example": ["127.0.0.9"]}, ttl=60
    )
    clock = FakeClock()
    r = router(registry, clock, dns_servers=[dns.address], dns_timeout=0.3)
    expected = Route("mx:ext.example", (Hop("127.0.0.9", PORT),))
    assert await r.route("ext.example") == expected
    dns.stop()  # from now on, only the cache can answer
    clock.advance(59)
    assert await r.route("ext.example") == expected
    clock.advance(2)
    failed = await failure(r, "ext.example")
    assert (failed.code, failed.status) == (451, "4.4.3")


@pytest.mark.parametrize("server", ["not-an-ip", "127.0.0.1:0", "127.0.0.1:x", "[::1]"])
async def test_a_bad_dns_server_is_a_config_error(registry: Registry, server: str) -> None:
    with pytest.raises(ConfigError, match="dns_servers"):
        router(registry, dns_servers=[server])


def test_dns_servers_may_be_ip_or_ip_port() -> None:
    from relay.dns import make_resolver

    resolver = make_resolver(
        DeliveryConfig(dns_servers=["127.0.0.1", "127.0.0.2:5353", "::1", "[::1]:5353"])
    )
    assert [(ns.address, ns.port) for ns in resolver.nameservers] == [  # type: ignore[union-attr]
        ("127.0.0.1", 53),
        ("127.0.0.2", 5353),
        ("::1", 53),
        ("::1", 5353),
    ]
