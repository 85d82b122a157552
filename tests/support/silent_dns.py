"""A DNS server that never answers: UDP and TCP sockets on loopback that take queries, say nothing.

Fixture `silent_dns` yields a `SilentDns` whose `address` ("127.0.0.1:PORT")
goes in `[delivery] dns_servers`; every lookup through it times out (the
query is received, so the kernel reports no "port unreachable" that would
end the lookup early). For the temperror paths of SPF, DKIM and DMARC.
Both sockets are closed at teardown.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

HOST = "127.0.0.1"


ATTEMPTS = 10


class SilentDns:
    def __init__(self) -> None:
        for _ in range(ATTEMPTS):
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind((HOST, 0))
            self.port = int(self.udp.getsockname()[1])
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                self.tcp.bind((HOST, self.port))
            except OSError:  # that port is taken for TCP: try another
                self.udp.close()
                self.tcp.close()
                continue
            self.tcp.listen()  # connections wait in the backlog, unanswered
            return
        raise RuntimeError(f"no port free for both UDP and TCP in {ATTEMPTS} attempts")

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()


@pytest.fixture
def silent_dns() -> Iterator[SilentDns]:
    server = SilentDns()
    try:
        yield server
    finally:
        server.close()
