"""loadtest.ports: ports for our servers never come from the kernel's ephemeral range."""

from __future__ import annotations

import socket

from loadtest.ports import ephemeral_range, free_port


def test_ports_are_outside_the_ephemeral_range_free_and_never_given_twice() -> None:
    low, high = ephemeral_range()
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(not low <= p <= high and p >= 10_000 for p in ports)
    with socket.socket() as sock:  # free now: a server can bind it
        sock.bind(("127.0.0.1", ports[-1]))


def test_a_port_for_dns_is_free_for_udp_and_tcp_alike() -> None:
    port = free_port("127.0.0.1", udp=True)
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_in_use_is_never_given() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        taken = busy.getsockname()[1]
        assert all(free_port() != taken for _ in range(500))


def test_ports_in_a_row_are_all_free_and_all_reserved() -> None:
    first = free_port(count=4)
    for port in range(first, first + 4):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
    assert all(not first <= free_port() < first + 4 for _ in range(300))
