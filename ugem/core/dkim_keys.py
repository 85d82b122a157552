"""DKIM keys on disk: one directory per domain, one key generation per selector.

Layout under `[dkim] key_dir` (default <data_dir>/dkim)::

    <domain>/<selector>.rsa.pem        RSA-2048 private key, PKCS#8 PEM, mode 0600
    <domain>/<selector>.ed25519.pem    optional Ed25519 key of the same generation
    <domain>/active                    the selector that signs (one line)

The RSA key of generation S is published at `S._domainkey.<domain>`, its
Ed25519 partner (RFC 8463 dual signing) at `S-ed25519._domainkey.<domain>`.
`keygen` writes a domain's first generation, `rotate` a further one (a
selector in use is refused); the newest is the active one, and the old ones
stay (their DNS records still verify mail in flight) until `drop`, which
refuses the active selector. `KeyStore.active(domain)` is what the signer
reads: the active generation's keys, re-read when the `active` file changes
(with a `recheck` interval, the file is looked at no more often than that:
the node's signer reuses an answer for a second, so a rotation takes effect
within one).
Files are written to a temporary name and renamed, so a reader never sees
half a key. Faults are ugem errors: an unknown domain or selector is
NotFoundError, a selector in use ConflictError, a bad name UsageError, an
unreadable or malformed key file ConfigError naming the file.
"""

from __future__ import annotations

import base64
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from ugem.core.clock import Clock
from ugem.core.config import Config
from ugem.core.errors import ConfigError, ConflictError, NotFoundError, UsageError
from ugem.core.names import canonical_domain

RSA_BITS = 2048
RSA_EXPONENT = 65537
ED25519_SUFFIX = "-ed25519"
ACTIVE_FILE = "active"
SELECTOR_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,50}[a-z0-9])?")
PRIVATE_MODE = 0o600
DIR_MODE = 0o700


@dataclass(frozen=True)
class KeySet:
    """One generation: the keys that sign a domain's mail under one selector."""

    domain: str
    selector: str
    rsa: rsa.RSAPrivateKey
    ed25519: ed25519.Ed25519PrivateKey | None

    @property
    def ed25519_selector(self) -> str:
        return self.selector + ED25519_SUFFIX


@dataclass(frozen=True)
class SelectorInfo:
    """A row of `ugem dkim list`."""

    domain: str
    selector: str
    ed25519: bool
    active: bool
    created: float


def key_path(config: Config) -> Path:
    """The key directory: `[dkim] key_dir`, or <data_dir>/dkim."""
    return Path(config.dkim.key_dir) if config.dkim.key_dir else config.data_path / "dkim"


def check_selector(selector: str) -> str:
    """A selector as a DNS label of ours (lower case, no -ed25519 suffix); else UsageError."""
    low = selector.strip().lower()
    if not SELECTOR_RE.fullmatch(low) or low.endswith(ED25519_SUFFIX):
        raise UsageError(
            f"selector {selector!r}: expected 1-52 of a-z, 0-9 and '-' "
            f"(not at the ends, not ending in {ED25519_SUFFIX})"
        )
    return low


def _domain(domain: str) -> str:
    try:
        return canonical_domain(domain)
    except ValueError as exc:
        raise UsageError(f"domain {domain!r}: {exc}") from None


def txt_record(public: rsa.RSAPublicKey | ed25519.Ed25519PublicKey) -> str:
    """The DNS TXT value publishing a public key (RFC 6376 3.6.1, RFC 8463 4)."""
    if isinstance(public, rsa.RSAPublicKey):
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"


def dns_records(keys: KeySet) -> list[tuple[str, str]]:
    """(DNS name, TXT value) for each key of a generation."""
    name = f"{keys.selector}._domainkey.{keys.domain}"
    out = [(name, txt_record(keys.rsa.public_key()))]
    if keys.ed25519 is not None:
        ed_name = f"{keys.ed25519_selector}._domainkey.{keys.domain}"
        out.append((ed_name, txt_record(keys.ed25519.public_key())))
    return out


def _write_private(path: Path, data: bytes) -> None:
    """Write atomically with mode 0600 from the first byte."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class KeyStore:
    """The key directory; the signer's view (`active`) and the CLI's (`generate`, ...)."""

    def __init__(self, root: Path, clock: Clock | None = None, recheck: float = 0.0) -> None:
        """`recheck`: seconds (of `clock`) an answer of `active` is reused without a stat."""
        self.root = root
        self._cache: dict[str, tuple[tuple[int, int], KeySet]] = {}
        self._clock, self._recheck = clock, recheck
        self._answers: dict[str, tuple[float, KeySet | None]] = {}

    def _dir(self, domain: str) -> Path:
        return self.root / domain

    # -- reading ---------------------------------------------------------------------------

    def active(self, domain: str) -> KeySet | None:
        """The domain's signing keys, None when it has none; cached until `active` changes,
        which is looked at again at most every `recheck` seconds (a stat costs the hot path)."""
        if self._clock is None or self._recheck <= 0:
            return self._active(domain)
        now = self._clock.monotonic()
        answer = self._answers.get(domain)
        if answer is not None and now - answer[0] < self._recheck:
            return answer[1]
        keys = self._active(domain)
        self._answers[domain] = (now, keys)
        return keys

    def _active(self, domain: str) -> KeySet | None:
        marker = self._dir(domain) / ACTIVE_FILE
        try:
            info = marker.stat()
        except FileNotFoundError:
            self._cache.pop(domain, None)
            return None
        stamp = (info.st_ino, info.st_mtime_ns)  # `activate` replaces the file: a new inode
        cached = self._cache.get(domain)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        keys = self.load(domain, marker.read_text(encoding="ascii").strip())
        self._cache[domain] = (stamp, keys)
        return keys

    def load(self, domain: str, selector: str) -> KeySet:
        """A generation's keys; NotFoundError if there is no such selector."""
        folder = self._dir(domain)
        rsa_file = folder / f"{selector}.rsa.pem"
        if not rsa_file.exists():
            raise NotFoundError(f"no DKIM selector {selector!r} for {domain}")
        rsa_key = _load_rsa(rsa_file)
        ed_file = folder / f"{selector}.ed25519.pem"
        ed_key = _load_ed25519(ed_file) if ed_file.exists() else None
        return KeySet(domain, selector, rsa_key, ed_key)

    def active_selector(self, domain: str) -> str | None:
        marker = self._dir(domain) / ACTIVE_FILE
        return marker.read_text(encoding="ascii").strip() if marker.exists() else None

    def selectors(self) -> list[SelectorInfo]:
        """Every generation of every domain, sorted by domain then age."""
        rows: list[SelectorInfo] = []
        if not self.root.is_dir():
            return rows
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            active = self.active_selector(folder.name)
            for pem in folder.glob("*.rsa.pem"):
                selector = pem.name.removesuffix(".rsa.pem")
                ed = (folder / f"{selector}.ed25519.pem").exists()
                created = pem.stat().st_mtime
                rows.append(SelectorInfo(folder.name, selector, ed, selector == active, created))
        return sorted(rows, key=lambda r: (r.domain, r.created, r.selector))

    # -- changing --------------------------------------------------------------------------

    def generate(self, domain: str, selector: str, with_ed25519: bool = False) -> KeySet:
        """Write a new generation and make it the active one (it signs from now on)."""
        domain, selector = _domain(domain), check_selector(selector)
        folder = self._dir(domain)
        if (folder / f"{selector}.rsa.pem").exists():
            raise ConflictError(f"DKIM selector {selector!r} of {domain} exists already")
        folder.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        keys = KeySet(
            domain,
            selector,
            rsa.generate_private_key(public_exponent=RSA_EXPONENT, key_size=RSA_BITS),
            ed25519.Ed25519PrivateKey.generate() if with_ed25519 else None,
        )
        if keys.ed25519 is not None:
            _write_private(folder / f"{selector}.ed25519.pem", _pem(keys.ed25519))
        _write_private(folder / f"{selector}.rsa.pem", _pem(keys.rsa))
        self.activate(domain, selector)
        return keys

    def keygen(self, domain: str, selector: str, with_ed25519: bool) -> KeySet:
        """The first generation of a domain; a domain with keys is a ConflictError."""
        domain = _domain(domain)
        if self.active_selector(domain) is not None:
            raise ConflictError(f"{domain} has DKIM keys already; use rotate for a new selector")
        return self.generate(domain, selector, with_ed25519)

    def rotate(
        self, domain: str, selector: str = "", with_ed25519: bool | None = None, now: float = 0.0
    ) -> KeySet:
        """A new generation, active at once; the old ones stay (and verify) until dropped.

        Its selector is `selector`, or s<YYYYMMDD> (UTC) with -2, -3... when
        taken; Ed25519 follows the generation it replaces unless told.
        """
        domain = _domain(domain)
        current = self.active_selector(domain)
        if current is None:
            raise NotFoundError(f"{domain} has no DKIM key to rotate; use keygen")
        if with_ed25519 is None:
            with_ed25519 = (self._dir(domain) / f"{current}.ed25519.pem").exists()
        return self.generate(domain, selector or self.free_selector(domain, now), with_ed25519)

    def free_selector(self, domain: str, now: float = 0.0) -> str:
        """s<YYYYMMDD> of `now` (UTC; 0: the current time), with -2, -3... when taken."""
        base = time.strftime("s%Y%m%d", time.gmtime(now or time.time()))
        selector, n = base, 1
        while (self._dir(_domain(domain)) / f"{selector}.rsa.pem").exists():
            n += 1
            selector = f"{base}-{n}"
        return selector

    def activate(self, domain: str, selector: str) -> None:
        _write_private(self._dir(domain) / ACTIVE_FILE, f"{selector}\n".encode("ascii"))

    def drop(self, domain: str, selector: str) -> None:
        """Delete a generation that no longer signs; the active one is refused."""
        domain, selector = _domain(domain), check_selector(selector)
        folder = self._dir(domain)
        if not (folder / f"{selector}.rsa.pem").exists():
            raise NotFoundError(f"no DKIM selector {selector!r} for {domain}")
        if self.active_selector(domain) == selector:
            raise ConflictError(
                f"{selector!r} is the active selector of {domain}; rotate before dropping it"
            )
        (folder / f"{selector}.ed25519.pem").unlink(missing_ok=True)
        (folder / f"{selector}.rsa.pem").unlink()


def _load(path: Path) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError("dkim.key_dir", str(path), f"a readable PEM private key ({exc})") from exc


def _load_rsa(path: Path) -> rsa.RSAPrivateKey:
    key = _load(path)
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < RSA_BITS:
        raise ConfigError("dkim.key_dir", str(path), f"an RSA key of at least {RSA_BITS} bits")
    return key


def _load_ed25519(path: Path) -> ed25519.Ed25519PrivateKey:
    key = _load(path)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError("dkim.key_dir", str(path), "an Ed25519 key")
    return key
