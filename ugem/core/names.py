"""Canonical forms of domain names and mail-server addresses.

Every comparison of a domain in the project is made on `canonical_domain()`:
lower case, no trailing dot, IDN in its ASCII (punycode, UTS #46) form, so
`MINFIN.gov.kz.`, `minfin.gov.kz` and a Unicode spelling of it are one name.
One trailing dot (the root) is dropped; an empty label anywhere (`a..kz`,
`.a.kz`, `a.kz..`) is refused. SMTP paths take no trailing dot at all
(`relay.accept.address`).
`canonical_network()` turns "10.0.0.1" or "10.0.0.0/24" or an IPv6 form into
one `ipaddress` network. Both raise `ValueError` naming what was wrong.
"""

from __future__ import annotations

import ipaddress
import re

import idna

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")  # \Z: "$" would let a final "\n" in
MAX_DOMAIN = 255


def canonical_domain(name: str) -> str:
    """The ASCII, lower-case, dot-less-at-the-end form of a DNS domain name."""
    text = name.strip()
    text = text[:-1] if text.endswith(".") else text  # one dot, the root: "dept.kz.." is no name
    if not text:
        raise ValueError("empty domain")
    if not text.isascii():
        try:
            text = idna.encode(text, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise ValueError(f"{name!r} is not a valid internationalised domain: {exc}") from exc
    text = text.lower()
    if len(text) > MAX_DOMAIN:
        raise ValueError(f"domain longer than {MAX_DOMAIN} characters")
    labels = text.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{name!r} is not a valid domain name (letters, digits, hyphens, dots)")
    return text


def canonical_network(addr: str) -> IPNetwork:
    """A mail server's address (IP or CIDR, v4 or v6) as a network."""
    try:
        return ipaddress.ip_network(addr.strip(), strict=False)
    except ValueError as exc:
        raise ValueError(f"{addr!r} is not an IP address or CIDR network") from exc
