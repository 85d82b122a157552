"""DKIM signing of outbound mail (RFC 6376), RSA-SHA256 and Ed25519-SHA256 (RFC 8463).

`DkimSigner.outgoing(data, domains, sender_domain, queue_id)` returns the
message with DKIM-Signature header fields prepended, signed over exactly
`data` (which already carries the relay's Received: header, so the bytes
spooled and sent are the bytes signed). The signing domain is the first with
an active key (`ugem.core.dkim_keys.KeyStore`) of: the From: domain when it is one
of the sending connection's `domains`, the envelope sender's domain, the
`[dkim] gateway_domain`. A generation with an Ed25519 key gets two
signatures (RSA first, Ed25519 on top).

Promises: relaxed/relaxed canonicalization; h= lists From, To, Cc, Subject,
Date, Message-ID, Reply-To and the MIME headers once more than they occur
(so none can be added later) and the other RFC 6376 5.4.1 headers as often
as they occur; never l=; t= from the injected clock. dkimpy does the
canonicalization, the header selection and hashing and the folding; the
signature itself is OpenSSL's through `cryptography` (RSA PKCS#1 v1.5 over
SHA-256, Ed25519), not dkimpy's pure-Python RSA.

`outgoing_async` does the same with the signing beside the event loop: in a
signing process (`relay.deliver.sign_process`, attached as `processes`) when
one is ready, else in a worker thread (OpenSSL releases the GIL while it
signs); and without either when no candidate domain has a key.

Failures: `sign` raises `SigningError` (`ugem.core.errors`;
a message dkimpy cannot parse, an unreadable key). `outgoing` never raises: it
logs `dkim_sign_failed` at ERROR with the queue id and returns the message
unsigned, because losing or refusing a connected organisation's mail is worse
than sending it unsigned.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Collection, Sequence

import dkim
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from dkim.canonicalization import CanonicalizationPolicy

from relay.deliver.sign_process import SignerUnavailable, SigningProcesses, child_command
from relay.dkim_canon import relaxed_body
from relay.header_block import Header, addresses_in, dkim_fields
from ugem.core.clock import Clock
from ugem.core.config import Config
from ugem.core.dkim_keys import KeySet, KeyStore, key_path
from ugem.core.errors import ConfigError, SigningError, UgemError
from ugem.core.log import event
from ugem.core.names import canonical_domain

log = logging.getLogger(__name__)

HEADER_NAME = b"DKIM-Signature"
CANON = b"relaxed/relaxed"
KEY_RECHECK_S = 1.0  # seconds a key lookup is reused: a rotation signs within a second
POLICY = CanonicalizationPolicy.from_c_value(CANON)
OVERSIGNED: tuple[bytes, ...] = (
    b"from",
    b"to",
    b"cc",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
)
SIGNED_AS_PRESENT: tuple[bytes, ...] = tuple(h for h in dkim.DKIM.SHOULD if h not in OVERSIGNED)
B64_LINE = 72  # characters of the signature per folded line

Signer = Callable[[bytes], bytes]  # SHA-256 digest -> signature


class Prepared:
    """What every signature of one message shares: its canonical headers, h= and bh=."""

    def __init__(self, data: bytes) -> None:
        # The relay holds CRLF text only: the header section ends at the first empty
        # line, and is cut once, in linear time (dkimpy's own parser is quadratic in a
        # folded field's lines).
        header = Header.parse(data)
        try:
            headers = dkim_fields(header)
        except ValueError as exc:
            raise SigningError(f"message header cannot be parsed: {exc}") from exc
        self.from_values = header.values("from")
        self.raw_headers: list[tuple[bytes, bytes]] = [(n, v) for n, v in headers]
        self.headers: list[tuple[bytes, bytes]] = POLICY.canonicalize_headers(headers)
        self.include = signed_header_names(self.raw_headers)
        body_digest = hashlib.sha256(relaxed_body(header.body)).digest()
        self.body_hash = base64.b64encode(body_digest)

    def from_domain(self) -> str | None:
        """The domain of the (last) From: address, canonical; None if there is none."""
        addresses = addresses_in(self.from_values[-1]) if self.from_values else None
        if not addresses or "@" not in addresses[-1]:
            return None
        try:
            return canonical_domain(addresses[-1].rpartition("@")[2])
        except ValueError:
            return None


def signed_header_names(headers: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
    """h=: over-signed names once more than they occur, the other SHOULD names as they occur."""
    counts = Counter(name.lower() for name, _ in headers)
    names = [name for name in OVERSIGNED for _ in range(counts[name] + 1)]
    return names + [name for name in SIGNED_AS_PRESENT for _ in range(counts[name])]


def signature_field(
    msg: Prepared, domain: str, selector: str, algorithm: bytes, sign: Signer, now: float
) -> bytes:
    """One DKIM-Signature header field, CRLF-terminated, ready to prepend."""
    tags = [
        (b"v", b"1"),
        (b"a", algorithm),
        (b"c", CANON),
        (b"d", domain.encode("ascii")),
        (b"s", selector.encode("ascii")),
        (b"t", str(int(now)).encode("ascii")),
        (b"h", b" : ".join(msg.include)),
        (b"bh", msg.body_hash),
    ]
    head: bytes = dkim.fold(
        b"; ".join(b"=".join(t) for t in tags) + b";", namelen=len(HEADER_NAME) + 2
    )
    unsigned = b" " + head + b"\r\n b="  # b= on a line of its own; its value is hashed empty
    hasher = hashlib.sha256()
    dkim.hash_headers(hasher, POLICY, msg.headers, msg.include, (HEADER_NAME, unsigned), None)
    value = base64.b64encode(sign(hasher.digest()))
    lines = [value[i : i + B64_LINE] for i in range(0, len(value), B64_LINE)]
    return HEADER_NAME + b":" + unsigned + b"\r\n   ".join(lines) + b"\r\n"


def rsa_signer(keys: KeySet) -> Signer:
    key = keys.rsa
    return lambda digest: key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


def signatures(msg: Prepared, keys: KeySet, now: float) -> bytes:
    """The header fields of one key generation: RSA, and Ed25519 on top when it has one."""
    out = signature_field(msg, keys.domain, keys.selector, b"rsa-sha256", rsa_signer(keys), now)
    if keys.ed25519 is not None:
        ed = keys.ed25519
        out = (
            signature_field(
                msg, keys.domain, keys.ed25519_selector, b"ed25519-sha256", ed.sign, now
            )
            + out
        )
    return out


class DkimSigner:
    def __init__(self, keys: KeyStore, gateway_domain: str, clock: Clock) -> None:
        self.keys = keys
        self.gateway_domain = gateway_domain
        self.clock = clock
        self.processes: SigningProcesses | None = None  # signing beside the loop, if started

    def sign(self, data: bytes, domains: Collection[str], sender_domain: str | None) -> bytes:
        """The DKIM-Signature fields for `data` (b"" when no candidate domain has a key)."""
        if not self.has_keys(domains):
            return b""
        return self._sign(data, domains, sender_domain)

    def _sign(self, data: bytes, domains: Collection[str], sender_domain: str | None) -> bytes:
        """`sign` once `has_keys` said yes."""
        msg = Prepared(data)
        keys = self._keys_for(msg, domains, sender_domain)
        if keys is None:
            return b""
        try:
            return signatures(msg, keys, self.clock.now())
        except (ValueError, TypeError) as exc:  # cryptography's refusals
            raise SigningError(f"signing with {keys.selector}/{keys.domain}: {exc}") from exc

    def _keys_for(
        self, msg: Prepared, domains: Collection[str], sender_domain: str | None
    ) -> KeySet | None:
        author = msg.from_domain()
        candidates = [author if author in domains else None, sender_domain, self.gateway_domain]
        for domain in dict.fromkeys(d for d in candidates if d):
            keys = self._active(domain)
            if keys is not None:
                return keys
        return None

    def has_keys(self, domains: Collection[str]) -> bool:
        """Whether mail of `domains` may get a signature: a stat per domain, no parsing.

        A key that cannot be read counts as there, so `sign` meets and reports it.
        """
        try:
            return any(self._active(d) for d in (*domains, self.gateway_domain) if d)
        except SigningError:
            return True

    def _active(self, domain: str) -> KeySet | None:
        try:
            return self.keys.active(domain)
        except (UgemError, OSError) as exc:
            raise SigningError(f"DKIM key of {domain}: {exc}") from exc

    def outgoing(
        self, data: bytes, domains: Collection[str], sender_domain: str | None, queue_id: str
    ) -> bytes:
        """`data` signed; unsigned (and an ERROR logged) if signing fails. Never raises."""
        return self._logged(self.sign, data, domains, sender_domain, queue_id)

    def _logged(
        self,
        sign: Callable[[bytes, Collection[str], str | None], bytes],
        data: bytes,
        domains: Collection[str],
        sender_domain: str | None,
        queue_id: str,
    ) -> bytes:
        try:
            fields = sign(data, domains, sender_domain)
        except Exception as exc:
            return _unsigned(data, queue_id, exc)
        return _prepended(fields, data, queue_id, "thread")

    async def outgoing_async(
        self, data: bytes, domains: Collection[str], sender_domain: str | None, queue_id: str
    ) -> bytes:
        """`outgoing` with the signing beside the event loop when there is a key to sign with.

        In a signing process (`relay.deliver.sign_process`) when one is ready, so dkimpy's
        Python steps run on another core; else in a worker thread (OpenSSL releases the GIL
        while it signs, the rest takes turns with the loop).
        """
        if not self.has_keys(domains):
            return data
        if self.processes is not None:
            try:
                fields = await self.processes.sign(data, tuple(domains), sender_domain or "")
            except SignerUnavailable:
                pass  # not started or restarting: this one is signed in a thread
            except SigningError as exc:
                return _unsigned(data, queue_id, exc)
            else:
                return _prepended(fields, data, queue_id, "process")
        return await asyncio.to_thread(
            self._logged, self._sign, data, domains, sender_domain, queue_id
        )


def _unsigned(data: bytes, queue_id: str, exc: Exception) -> bytes:
    """`data` as it was, the failure logged: unsigned mail is better than lost mail."""
    event(log, "dkim_sign_failed", logging.ERROR, queue_id=queue_id, error=str(exc))
    return data


def _prepended(fields: bytes, data: bytes, queue_id: str, via: str) -> bytes:
    event(
        log,
        "dkim_signed",
        logging.DEBUG,
        queue_id=queue_id,
        signatures=fields.count(HEADER_NAME + b":"),
        via=via,
    )
    return fields + data


def signer_from_config(config: Config, clock: Clock) -> DkimSigner | None:
    """The node's signer, or None when `[dkim] enabled` is false."""
    if not config.dkim.enabled:
        return None
    gateway = config.dkim.gateway_domain
    if gateway:
        try:
            gateway = canonical_domain(gateway)
        except ValueError as exc:
            raise ConfigError("dkim.gateway_domain", gateway, f"a domain name ({exc})") from None
    return DkimSigner(KeyStore(key_path(config), clock, KEY_RECHECK_S), gateway, clock)


async def start_processes(signer: DkimSigner, config: Config) -> SigningProcesses | None:
    """`[dkim] sign_processes` signing processes attached to `signer` (None when it is 0).

    They are started now when the key directory holds a key, else at the first
    message with one; one that cannot start is logged and started again later.
    Until one is ready, `signer` signs in a thread.
    """
    count = config.dkim.sign_processes
    if count == 0:
        return None
    command = child_command(str(signer.keys.root), signer.gateway_domain)
    processes = SigningProcesses(count, command, signer.clock, config.dkim.sign_timeout)
    signer.processes = processes
    try:
        has_key = any(row.active for row in signer.keys.selectors())
    except OSError:
        has_key = True  # the processes meet and report it
    if has_key:
        await processes.start()
    return processes
