"""Free ports for servers we start: outside the kernel's ephemeral range, never twice.

`free_port(host, udp=False)` returns a port on `host` that can be bound now
(for TCP, and for UDP too when `udp`), chosen at random outside the range
the kernel hands to outgoing connections (`/proc/sys/net/ipv4/
ip_local_port_range`; 32768-60999 where it cannot be read), and never one
this process handed out before. Asking the kernel for port 0 and closing it
is racy under load: between the close and the server's bind, any outgoing
connection may be given that very port as its source port, and the server
then fails with "Address already in use". Ports outside the ephemeral range
are never given away so. Raises OSError when no port is found in
`ATTEMPTS` tries.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

LOWEST = 10_000
ATTEMPTS = 2_000
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_given: set[int] = set()
_pick = random.Random(os.getpid() ^ int.from_bytes(os.urandom(4), "big"))


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range of source ports for outgoing connections."""
    try:
        low, high = (int(x) for x in _RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32_768, 60_999
    return low, high


def _candidates() -> list[range]:
    low, high = ephemeral_range()
    spans = [range(LOWEST, max(LOWEST, low)), range(min(high + 1, 65_536), 65_536)]
    return [s for s in spans if len(s)]


def _bindable(host: str, port: int, udp: bool) -> bool:
    kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM) if udp else (socket.SOCK_STREAM,)
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def free_port(host: str = "127.0.0.1", udp: bool = False, count: int = 1) -> int:
    """A port free on `host` now, outside the ephemeral range, not handed out before; with
    `count`, the first of that many such ports in a row (a node's workers listen on the
    admin port + I)."""
    spans = [s for s in _candidates() if len(s) > count]
    weights = [len(s) for s in spans]
    for _ in range(ATTEMPTS):
        span = _pick.choices(spans, weights)[0]
        port = _pick.choice(span[: len(span) - count + 1])
        run = range(port, port + count)
        if all(p not in _given and _bindable(host, p, udp) for p in run):
            _given.update(run)
            return port
    raise OSError(f"no free port on {host} outside the ephemeral range in {ATTEMPTS} tries")
