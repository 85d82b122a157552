"""A self-signed certificate and key for STARTTLS tests, made with `cryptography`.

`self_signed(directory, name, addresses)` writes `cert.pem` and `key.pem` (an
EC P-256 key, valid for a day, subjectAltName `name` and the IP `addresses`)
and returns their paths; the test sink (`tests.support.sink`) serves one too.
`client_context()` is an SSL client context that trusts anything, as a
sending MTA doing opportunistic TLS does.

For verified TLS: `TestCa.create(directory)` is a private certificate
authority (its `cert_path` is what `[delivery] tls_ca_file` names) and
`ca.issue(directory, name, addresses)` writes a certificate it signed, with
its key. `server_context(cert, key)` serves a pair (for `Sink(tls=...)`), and
`fingerprint(pem_path)` / `der_fingerprint(der)` give the SHA-256 a client
compares with the certificate the server presented, and
`starttls_fingerprint(host, port)` is that of the certificate an SMTP server
shows a new STARTTLS client (smtplib; blocking: run it in a thread).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(
    directory: Path, name: str = "gw.test", addresses: Sequence[str] = ()
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(name)
    cert = _builder(subject, subject, key, name, addresses).sign(key, hashes.SHA256())
    return _write(directory, cert, key)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    name: str,
    addresses: Sequence[str],
) -> x509.CertificateBuilder:
    """A day's certificate for `key`, subjectAltName `name` and `addresses`."""
    alt_names: list[x509.GeneralName] = [x509.DNSName(name)]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    )


def _write(
    directory: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, stem: str = ""
) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}cert.pem", directory / f"{stem}key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass(frozen=True)
class TestCa:
    """A private certificate authority for tests of verified TLS."""

    __test__ = False  # not a pytest test class

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path  # PEM, for [delivery] tls_ca_file

    @classmethod
    def create(cls, directory: Path, name: str = "UGEM Test CA") -> TestCa:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(name)
        cert = (
            _builder(subject, subject, key, "ca.test", ())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        cert_path, _ = _write(directory, cert, key, stem="ca-")
        return cls(cert, key, cert_path)

    def issue(self, directory: Path, name: str, addresses: Sequence[str] = ()) -> tuple[Path, Path]:
        """A certificate for `name` (and `addresses`) signed by this CA: (cert, key) paths."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _builder(_name(name), self.cert.subject, key, name, addresses).sign(
            self.key, hashes.SHA256()
        )
        return _write(directory, cert, key)


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context serving this certificate and key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def fingerprint(pem_path: Path) -> str:
    """SHA-256 of a PEM certificate, hex."""
    return der_fingerprint(ssl.PEM_cert_to_DER_cert(pem_path.read_text(encoding="ascii")))


def der_fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def starttls_fingerprint(host: str, port: int) -> str:
    """SHA-256 of the certificate a new STARTTLS session with host:port is shown."""
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.ehlo("client.test")
        client.starttls(context=client_context())
        sock = client.sock
        assert isinstance(sock, ssl.SSLSocket)
        der = sock.getpeercert(binary_form=True)
        assert der is not None
        return der_fingerprint(der)
