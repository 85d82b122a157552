"""TLS for both directions: the server's context, the client's, what a session negotiated.

`server_context(cert, key)` is the STARTTLS context of the listener: TLS 1.2
or newer, no renegotiation; a certificate or key that cannot be loaded is a
`ConfigError` naming `smtp.tls_cert` (or `smtp.tls_key` when only one is set).
`verified_context(ca_file)` is the outbound context for destinations that
require TLS: the peer's certificate must chain to `ca_file` (the system's
bundle when empty) and match the next hop's name; an unreadable file is a
`ConfigError` naming `delivery.tls_ca_file`. `negotiated(ssl_object)` is what a
session's handshake chose (`TlsInfo`: version, cipher, bits), for the
`Received:` header and the delivery log. `RequiredTls` answers which
recipient domains must go over verified TLS ("example.org" matches that
domain, ".example.org" its subdomains). Nothing here does network I/O.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import dataclass

from ugem.core.errors import ConfigError
from ugem.core.names import canonical_domain

MIN_VERSION = ssl.TLSVersion.TLSv1_2
_ALG_BITS: dict[str, int] = {}  # cipher name -> key size of its algorithm, learnt from contexts


@dataclass(frozen=True)
class TlsInfo:
    """What one TLS session uses; str() reads like Postfix's Received: clause."""

    version: str  # "TLSv1.3"
    cipher: str  # OpenSSL's name, "TLS_AES_256_GCM_SHA384"
    bits: int  # secret bits used
    alg_bits: int  # bits of the cipher algorithm

    def __str__(self) -> str:
        return f"{self.version} with cipher {self.cipher} ({self.bits}/{self.alg_bits} bits)"


def _harden(context: ssl.SSLContext) -> ssl.SSLContext:
    context.minimum_version = MIN_VERSION
    context.options |= ssl.OP_NO_RENEGOTIATION
    return context


def server_context(cert: str, key: str) -> ssl.SSLContext | None:
    """The listener's STARTTLS context, or None when neither file is configured."""
    if not cert and not key:
        return None
    if not cert or not key:
        missing = "smtp.tls_cert" if not cert else "smtp.tls_key"
        raise ConfigError(missing, "", "STARTTLS needs both tls_cert and tls_key")
    context = _harden(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            "smtp.tls_cert", cert, f"a readable PEM certificate chain matching smtp.tls_key ({exc})"
        ) from exc
    return context


def verified_context(ca_file: str) -> ssl.SSLContext:
    """Client context that verifies the chain (to `ca_file`, or the system's CAs) and name."""
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            "delivery.tls_ca_file", ca_file, f"a readable PEM file of CA certificates ({exc})"
        ) from exc
    return _harden(context)


def negotiated(ssl_object: object) -> TlsInfo | None:
    """The version and cipher of a finished handshake (an SSLObject or SSLSocket), else None."""
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    cipher = ssl_object.cipher()
    if cipher is None:
        return None
    name, protocol, bits = cipher
    version = ssl_object.version() or protocol
    return TlsInfo(version, name, bits, _alg_bits(ssl_object.context, name, bits))


def _alg_bits(context: ssl.SSLContext, name: str, default: int) -> int:
    if name not in _ALG_BITS:
        for described in context.get_ciphers():
            _ALG_BITS.setdefault(str(described["name"]), int(described["alg_bits"]))
    return _ALG_BITS.get(name, default)


def _pattern(text: str) -> str:
    """A configured entry in canonical form; a leading dot (subdomains) is kept."""
    dot = "." if text.strip().startswith(".") else ""
    return dot + canonical_domain(text.strip().lstrip("."))


@dataclass(frozen=True)
class RequiredTls:
    """`[delivery] tls_required_domains`: which recipient domains need verified TLS."""

    exact: frozenset[str]
    parents: tuple[str, ...]  # ".example.org" entries, with their dot

    @classmethod
    def of(cls, entries: Iterable[str]) -> RequiredTls:
        """From config entries; ValueError names a malformed one."""
        patterns = [_pattern(entry) for entry in entries]
        exact = frozenset(p for p in patterns if not p.startswith("."))
        return cls(exact, tuple(p for p in patterns if p.startswith(".")))

    def __bool__(self) -> bool:
        return bool(self.exact or self.parents)

    def requires(self, domain: str) -> bool:
        try:
            name = canonical_domain(domain)
        except ValueError:
            name = domain.strip().rstrip(".").lower()
        return name in self.exact or any(name.endswith(parent) for parent in self.parents)

    def recipients(self, rcpts: Iterable[str]) -> list[str]:
        """Those of `rcpts` whose domain requires TLS, in their order."""
        return [rcpt for rcpt in rcpts if self.requires(domain_of(rcpt))]


def domain_of(rcpt: str) -> str:
    return rcpt.rpartition("@")[2].lower()
