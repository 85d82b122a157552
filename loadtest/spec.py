"""Parsers for the small textual specs the CLI takes: durations, addresses, lists.

`parse_duration("10s")` → 10.0 (units ms, s, m, h; a bare number is
seconds), `parse_hostport("127.0.0.1:2525")` → ("127.0.0.1", 2525),
`parse_sources("127.0.0.2,127.0.0.5-127.0.0.7")` → the listed addresses with
ranges expanded, `parse_reply("554 5.7.1 Blocked")` → b"554 5.7.1 Blocked\r\n" (one
SMTP refusal: a 4xx or 5xx code and a text on one line). Every parser raises
`UsageError` naming the bad text and the accepted form; none does I/O.
"""

from __future__ import annotations

import ipaddress

from loadtest.errors import UsageError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_SOURCES = 256
MAX_REPLY = 510  # an SMTP reply line is at most 512 octets with its CRLF (RFC 5321 4.5.3.1.5)


def parse_duration(text: str) -> float:
    """Seconds in `text`: a number with an optional unit ms, s, m or h; positive."""
    raw = text.strip().lower()
    number, scale = raw, 1.0
    for unit in sorted(_UNITS, key=len, reverse=True):
        if raw.endswith(unit):
            number, scale = raw[: -len(unit)], _UNITS[unit]
            break
    try:
        value = float(number) * scale
    except ValueError:
        raise UsageError(f"bad duration {text!r}: use a number with ms, s, m or h") from None
    if not value > 0:
        raise UsageError(f"bad duration {text!r}: it must be positive")
    return value


def parse_hostport(text: str) -> tuple[str, int]:
    """("host", port) from "host:port" or "[v6]:port"; port 0..65535."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"bad address {text!r}: use host:port, such as 127.0.0.1:2525")
    return host, int(port)


def parse_sources(text: str) -> tuple[str, ...]:
    """Source addresses from a comma list whose items are addresses or ranges A-B."""
    sources: list[str] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        first, _, last = item.partition("-")
        start, end = _address(first, text), _address(last or first, text)
        if int(end) < int(start) or int(end) - int(start) >= MAX_SOURCES:
            raise UsageError(f"bad source range {item!r}: at most {MAX_SOURCES}, low to high")
        sources.extend(str(start + i) for i in range(int(end) - int(start) + 1))
    if not sources:
        raise UsageError(f"bad source list {text!r}: name at least one address")
    return tuple(sources)


def _address(text: str, whole: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise UsageError(
            f"bad source {text!r} in {whole!r}: use addresses such as 127.0.0.2 "
            "or ranges such as 127.0.0.2-127.0.0.9"
        ) from None


def parse_reply(text: str) -> bytes:
    """The reply line (with its CRLF) of `text`: a code 400-599, a space, printable ASCII."""
    code, _, rest = text.strip().partition(" ")
    printable = all(" " <= c <= "~" for c in rest)
    if len(code) != 3 or not code.isdigit() or code[0] not in "45" or not rest or not printable:
        raise UsageError(
            f"bad reply {text!r}: use a refusal such as '554 5.7.1 Blocked', a code 400-599 "
            "and a text of printable ASCII on one line"
        )
    line = f"{code} {rest}"
    if len(line) > MAX_REPLY:
        raise UsageError(f"bad reply {text[:40]!r}...: at most {MAX_REPLY} characters")
    return line.encode("ascii") + b"\r\n"
