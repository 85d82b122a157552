"""Fixtures shared by the whole suite come from the peers in tests/support."""

pytest_plugins = [
    "tests.support.redis_server",
    "tests.support.redis_outage",
    "tests.support.sentinel",
    "tests.support.sink",
    "tests.support.dnsmasq",
    "tests.support.silent_dns",
    "tests.support.stores",
]
