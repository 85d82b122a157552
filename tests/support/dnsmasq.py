"""A private DNS server for tests: a real dnsmasq on loopback with only the given records.

The fixture `dns_server` is a factory; each call starts one `/usr/sbin/dnsmasq`
(Debian's dnsmasq-base) in the foreground on 127.0.0.1 at a free UDP/TCP
port, answering only from the records the test gives, forwarding nothing::

    dns = await dns_server(
        mx={"ext.example": [(10, "mx1.ext.example")], "null.example": [(0, ".")]},
        a={"mx1.ext.example": ["127.0.0.9"]},
        aaaa={"v6.example": ["::1"]},
        txt={"ext.example": ["v=spf1 ip4:127.0.0.9 -all"]},
        cname={"www.ext.example": "mx1.ext.example"},
        nxdomain=["gone.example"],
        forward={"silent.example": silent.address},
        ttl=300,
    )
    config: [delivery] dns_servers = [dns.address]      # "127.0.0.1:PORT"

The call starts the server and returns once it answers (plain call or `await`,
both work). Every name it was not given is NXDOMAIN (`--local=/#/`), so a
lookup never hangs; a name it was given answers NODATA for the other types (an
MX target of "." is a null MX, RFC 7505, served as a raw record, so such a
name has no other types). `nxdomain` only documents intent: those names must
not also be given records. `forward` sends every query for a domain (and its
subdomains) to another server ("ip:port"), e.g. a `silent_dns` that never
answers, so that one zone times out while the others answer. TXT values may
hold any characters and any length (split into 255-octet strings; join them to
read). `ttl` is the TTL of every answer (dnsmasq's `--local-ttl`; its own
default would be 0). The records go in a generated config file (`--conf-file`,
in place of /etc/dnsmasq.conf), its log (`dns.log_text()`) lists every query.
Servers are stopped at teardown; without dnsmasq the test is skipped with the
reason (fails under UGEM_TEST_REQUIRE_PEERS=1: tests.support.peers).
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import pytest

from loadtest.ports import free_port
from tests.support.peers import missing
from tests.support.processes import stop_process

DNSMASQ = "/usr/sbin/dnsmasq"
HOST = "127.0.0.1"
START_TIMEOUT = 10.0
PORT_ATTEMPTS = 5
TXT_CHUNK = 255


class DnsServer:
    """One running dnsmasq; `address` is "127.0.0.1:PORT"."""

    def __init__(self, port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.host = HOST
        self.port = port
        self.process = process
        self.log_path = log_path

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_process(self.process, 5)

    def __await__(self) -> Generator[Any, None, DnsServer]:
        """`await dns_server(...)` works as well as a plain call."""
        return self._itself().__await__()

    async def _itself(self) -> DnsServer:
        return self


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _txt_line(name: str, value: str) -> str:
    chunks = [value[i : i + TXT_CHUNK] for i in range(0, len(value), TXT_CHUNK)] or [""]
    return f"txt-record={name}," + ",".join(_quote(c) for c in chunks)


def _mx_lines(name: str, exchanges: Iterable[tuple[int, str]]) -> list[str]:
    lines = []
    for preference, host in exchanges:
        if host.strip(".") == "":
            lines.append(f"dns-rr={name},15,{preference:04x}00")  # null MX: preference, root
        else:
            lines.append(f"mx-host={name},{host.rstrip('.')},{preference}")
    return lines


def config_lines(
    mx: Mapping[str, Sequence[tuple[int, str]]],
    a: Mapping[str, Sequence[str]],
    aaaa: Mapping[str, Sequence[str]],
    txt: Mapping[str, Sequence[str] | str],
    cname: Mapping[str, str],
    forward: Mapping[str, str] | None = None,
) -> list[str]:
    """dnsmasq config lines that serve exactly these records (and forward these domains)."""
    lines = []
    for name, exchanges in mx.items():
        lines += _mx_lines(name, exchanges)
    for name, addrs in [*a.items(), *aaaa.items()]:
        lines += [f"host-record={name},{addr}" for addr in addrs]
    for name, values in txt.items():
        lines += [_txt_line(name, v) for v in ([values] if isinstance(values, str) else values)]
    lines += [f"cname={alias},{target}" for alias, target in cname.items()]
    for domain, server in (forward or {}).items():
        host, _, port = server.rpartition(":")
        lines.append(f"server=/{domain}/{host}#{port}")
    return lines


def _answers(port: int) -> bool:
    query = dns.message.make_query("ready.invalid.", "A")
    try:
        dns.query.udp(query, HOST, port=port, timeout=0.05)
    except (dns.exception.DNSException, OSError):
        return False
    return True


def _command(conf: Path, port: int, ttl: int) -> list[str]:
    return [
        DNSMASQ,
        "--keep-in-foreground",
        f"--conf-file={conf}",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        f"--listen-address={HOST}",
        f"--port={port}",
        "--local=/#/",  # everything not configured is NXDOMAIN, never forwarded
        f"--local-ttl={ttl}",
        "--log-facility=-",
        "--log-queries",
        "--pid-file=",
        f"--user={pwd.getpwuid(os.getuid()).pw_name}",
        f"--group={grp.getgrgid(os.getgid()).gr_name}",
    ]


def _launch(directory: Path, conf: Path, ttl: int) -> DnsServer:
    """Start dnsmasq on a free port; retry another port if it was taken meanwhile."""
    for _ in range(PORT_ATTEMPTS):
        port = free_port(HOST, udp=True)
        log_path = directory / f"dnsmasq-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                _command(conf, port, ttl), stdout=log, stderr=subprocess.STDOUT
            )
        server = DnsServer(port, process, log_path)
        deadline = time.monotonic() + START_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            if _answers(port):
                return server
            time.sleep(0.02)  # not listening yet: poll again shortly
        server.stop()
        if "in use" not in server.log_text():
            raise RuntimeError(f"dnsmasq did not start:\n{server.log_text()}")
    raise RuntimeError(f"dnsmasq found no free port in {PORT_ATTEMPTS} attempts")


StartDns = Callable[..., DnsServer]


@pytest.fixture
def dns_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartDns]:
    """Factory: `dns_server(mx=..., a=..., aaaa=..., txt=..., cname=..., nxdomain=..., ttl=...,
    forward=...)`."""
    if not os.access(DNSMASQ, os.X_OK):
        missing(f"{DNSMASQ} is not installed (Debian package dnsmasq-base)")
    started: list[DnsServer] = []

    def start(
        mx: Mapping[str, Sequence[tuple[int, str]]] | None = None,
        a: Mapping[str, Sequence[str]] | None = None,
        aaaa: Mapping[str, Sequence[str]] | None = None,
        txt: Mapping[str, Sequence[str] | str] | None = None,
        cname: Mapping[str, str] | None = None,
        nxdomain: Sequence[str] = (),
        ttl: int = 300,
        forward: Mapping[str, str] | None = None,
    ) -> DnsServer:
        given = {*(mx or {}), *(a or {}), *(aaaa or {}), *(txt or {}), *(cname or {})}
        clash = sorted(given.intersection(nxdomain))
        if clash:
            raise ValueError(f"names both given records and NXDOMAIN: {clash}")
        lines = config_lines(mx or {}, a or {}, aaaa or {}, txt or {}, cname or {}, forward)
        directory = tmp_path_factory.mktemp("dnsmasq")
        conf = directory / "dnsmasq.conf"
        conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
        server = _launch(directory, conf, ttl)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
