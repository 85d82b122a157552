"""The `Received:` header the gateway prepends to every message it accepts (RFC 5321 4.4).

`received_header(...)` gives the header as bytes ending in CRLF, folded so no
line is long. What the client told us (its HELO name, the recipient) is never
copied raw: the HELO name is cut down to a safe charset and length (or
"unknown"), and the `for <rcpt>` clause appears only for a single recipient
whose address is plain printable ASCII without characters that could break
the header's syntax. The client address comes from the socket, not the client.
A session under TLS adds Postfix's clause on a line of its own,
`(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))`, its
names cut down to a safe charset and length. The date is RFC 5322's, from
the caller's (injected) clock. Never raises.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime

from relay.tls import TlsInfo

MAX_HELO = 64
_UNSAFE_HELO = re.compile(r"[^A-Za-z0-9.\-_:\[\]]")
_SAFE_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~@-]{3,254}\Z")
MAX_TLS_NAME = 64
MAX_BITS = 65536
_UNSAFE_TLS_NAME = re.compile(r"[^A-Za-z0-9._-]")


def protocol(esmtp: bool, tls: bool, smtputf8: bool) -> str:
    """The `with` keyword: SMTP, ESMTP, ESMTPS, UTF8SMTP or UTF8SMTPS (RFC 3848, 6531)."""
    if not esmtp:
        return "SMTP"
    return ("UTF8SMTP" if smtputf8 else "ESMTP") + ("S" if tls else "")


def safe_helo(name: str) -> str:
    cleaned = _UNSAFE_HELO.sub("", name)[:MAX_HELO]
    return cleaned or "unknown"


def address_literal(ip: str) -> str:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return "[unknown]"
    return f"[IPv6:{addr}]" if addr.version == 6 else f"[{addr}]"


def tls_clause(tls: TlsInfo) -> str:
    """`(using <version> with cipher <name> (<bits>/<alg bits> bits))`, sanitised."""
    version = _UNSAFE_TLS_NAME.sub("", tls.version)[:MAX_TLS_NAME] or "unknown"
    cipher = _UNSAFE_TLS_NAME.sub("", tls.cipher)[:MAX_TLS_NAME] or "unknown"
    bits, alg_bits = (min(max(int(b), 0), MAX_BITS) for b in (tls.bits, tls.alg_bits))
    return f"(using {TlsInfo(version, cipher, bits, alg_bits)})"


@functools.lru_cache(maxsize=4)
def _date(second: int) -> str:
    """RFC 5322 date of a whole second; cached, as every message of that second needs it."""
    return format_datetime(datetime.fromtimestamp(second, tz=UTC))


def received_header(
    *,
    helo: str,
    client_ip: str,
    hostname: str,
    with_: str,
    queue_id: str,
    rcpts: Sequence[str],
    when: float,
    tls: TlsInfo | None = None,
) -> bytes:
    date = _date(int(when))
    lines = [f"Received: from {safe_helo(helo)} ({address_literal(client_ip)})"]
    if tls is not None:
        lines.append(f"\t{tls_clause(tls)}")
    lines.append(f"\tby {safe_helo(hostname)} (UGEM) with {with_} id {queue_id}")
    if len(rcpts) == 1 and _SAFE_ADDRESS.match(rcpts[0]):
        lines.append(f"\tfor <{rcpts[0]}>")
    lines[-1] += ";"
    lines.append(f"\t{date}")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")
