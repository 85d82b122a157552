"""DNS readiness of an organisation's domain: is it set up to send its mail through the gateway?

`DnsReadiness.check(domain)` answers one `DnsFinding` per question, in this
order, each pass or fail with the record found (or why there is none):

- `mx`: the domain has MX hosts (shown by preference); none, a null MX
  (RFC 7505) or NXDOMAIN fails;
- `spf`: the domain's SPF record, evaluated by pyspf (RFC 7208 with its lookup
  limits) for each of the gateway's outbound addresses (`[node]
  public_addresses`), gives `pass` for every one; with no address configured
  it fails saying so (the record found is still shown);
- `dkim`, and `dkim-ed25519` when the domain's active key generation has an
  Ed25519 key: the TXT record at <selector>._domainkey.<domain> is a DKIM key
  record whose p= is the public key in the key directory (`ugem dkim
  keygen`); a domain without a key there fails, naming the command;
- `dmarc`: exactly one v=DMARC1 record at _dmarc.<domain> with a valid p=,
  shown with it.

DNS goes through `relay.dns`: an `AuthDns` on `[delivery] dns_servers` and
`dns_timeout` (`relay.dns.make_resolver`), built at the first lookup, each
lookup bounded by `dns_timeout` alone. pyspf runs in a worker thread with the
inbound check's query (`relay.inbound.spf.SpfQuery`, in this module's
wording) and its lookups come back to that resolver on the event loop
(`relay.dns.BlockingDns`), never to the system's. Nothing raises out of
`check` but a domain that is no domain name (UsageError): a timeout, a
SERVFAIL, a resolver that cannot be built (`relay.dns.DnsTrouble`) or a key
that cannot be read is a failed finding with the reason. The applications'
`DnsCheck` provider is the roof's adapter (ugem.adapters.readiness).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

import dns.name
import dns.rdata
import dns.rdatatype
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.TXT
import spf
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dkim.util import InvalidTagValueList, parse_tag_value

from relay.dns import NO_DEADLINE, Answer, AuthDns, BlockingDns, DnsTrouble
from relay.inbound.spf import SpfQuery
from ugem.core.config import Config, DeliveryConfig
from ugem.core.dkim_keys import KeyStore, key_path, txt_record
from ugem.core.errors import UsageError
from ugem.core.names import canonical_domain

DMARC_RE = re.compile(r"v\s*=\s*DMARC1\s*(;|$)", re.IGNORECASE)
DMARC_POLICIES = ("none", "quarantine", "reject")
SPF_PROBE_LOCAL = "postmaster"  # the MAIL FROM local part the SPF record is evaluated for
SPF_TERMS_ERROR = "Too many DNS lookups"  # pyspf's own wording of the RFC 7208 4.6.4 limit
PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class DnsFinding:
    name: str  # mx, spf, dkim, dkim-ed25519, dmarc
    ok: bool
    record: str  # the record found, or why there is none


def txt_text(rec: dns.rdata.Rdata) -> str:
    """A TXT record's character-strings joined (RFC 7208 3.3, RFC 6376 3.6.2.2)."""
    if not isinstance(rec, dns.rdtypes.ANY.TXT.TXT):
        return ""
    return b"".join(rec.strings).decode("utf-8", "replace")


def _spf_query(lookup: BlockingDns, domain: str, ip: str = "") -> SpfQuery:
    """pyspf's query for `domain`'s record as seen from `ip`, in the findings' wording."""
    return SpfQuery(
        lookup,
        ip,
        f"{SPF_PROBE_LOCAL}@{domain}",
        domain,
        terms_error=SPF_TERMS_ERROR,
        describe=DnsTrouble.brief,
    )


def _public_bytes(public: PublicKey) -> bytes:
    """What p= carries for `public` (as `ugem dkim keygen` prints it)."""
    return base64.b64decode(txt_record(public).rpartition("p=")[2])


def publishes(text: str, public: PublicKey) -> str:
    """Why the DKIM key record `text` does not publish `public` ("" when it does)."""
    try:
        tags = parse_tag_value(text.encode("utf-8"))
    except InvalidTagValueList as exc:
        return f"not a DKIM key record ({exc or 'malformed tag list'})"
    kind = "rsa" if isinstance(public, rsa.RSAPublicKey) else "ed25519"
    if tags.get(b"v", b"DKIM1") != b"DKIM1":
        return "v= is not DKIM1"
    if tags.get(b"k", b"rsa").decode("ascii", "replace").lower() != kind:
        return f"k= is not {kind}"
    p = re.sub(rb"\s+", b"", tags.get(b"p", b""))
    if not p:
        return "p= is empty (the key is revoked)" if b"p" in tags else "no p= tag"
    try:
        published = base64.b64decode(p, validate=True)
    except (binascii.Error, ValueError):
        return "p= is not base64"
    return "" if published == _public_bytes(public) else "p= is another key than ours"


class DnsReadiness:
    """The readiness check of one node (or command): its resolver, key directory and
    outbound addresses; `check(domain)` may be called any number of times."""

    def __init__(
        self, delivery: DeliveryConfig, keys: KeyStore, public_addresses: Sequence[str]
    ) -> None:
        self.delivery = delivery
        self.keys = keys
        self.public_addresses = tuple(public_addresses)
        self.dns = AuthDns(delivery, lazy=True)  # a bad dns_servers entry: failed findings

    async def check(self, domain: str) -> list[DnsFinding]:
        """The findings for `domain` (mx, spf, dkim[, dkim-ed25519], dmarc); never raises
        but UsageError for a domain that is no domain name."""
        try:
            domain = canonical_domain(domain)
        except ValueError as exc:
            raise UsageError(f"domain {domain!r}: {exc}") from None
        found = await asyncio.gather(
            self._guarded("mx", self._mx(domain)),
            self._guarded("spf", self._spf(domain)),
            self._dkim(domain),
            self._guarded("dmarc", self._dmarc(domain)),
        )
        return [f for part in found for f in (part if isinstance(part, list) else [part])]

    @staticmethod
    async def _guarded(name: str, work: Awaitable[DnsFinding]) -> DnsFinding:
        try:
            return await work
        except DnsTrouble as exc:
            return DnsFinding(name, False, f"lookup failed: {exc.brief()}")
        except Exception as exc:  # a key or record the check cannot read: a finding too
            return DnsFinding(name, False, f"check failed: {exc}")

    # -- DNS -----------------------------------------------------------------------------

    async def _resolve(self, name: str, rdtype: dns.rdatatype.RdataType) -> Answer:
        """The records and whether the name does not exist; DnsTrouble on no answer."""
        return await self.dns.lookup(name, rdtype, NO_DEADLINE)

    async def _txt(self, name: str) -> list[str]:
        records, _ = await self._resolve(name, dns.rdatatype.TXT)
        return [txt_text(r) for r in records]

    # -- the findings ----------------------------------------------------------------------

    async def _mx(self, domain: str) -> DnsFinding:
        records, nxdomain = await self._resolve(domain, dns.rdatatype.MX)
        if nxdomain:
            return DnsFinding("mx", False, f"no such domain: {domain} (NXDOMAIN)")
        mx = sorted(
            (r.preference, r.exchange) for r in records if isinstance(r, dns.rdtypes.ANY.MX.MX)
        )
        if not mx:
            return DnsFinding("mx", False, f"no MX record for {domain}")
        if all(host == dns.name.root for _, host in mx):
            return DnsFinding("mx", False, f"null MX (RFC 7505): {domain} takes no mail")
        hosts = [f"{pref} {host.to_text(omit_final_dot=True)}" for pref, host in mx]
        return DnsFinding("mx", True, ", ".join(hosts))

    async def _spf(self, domain: str) -> DnsFinding:
        lookup = self.dns.blocking(asyncio.get_running_loop(), NO_DEADLINE)
        return await asyncio.to_thread(self._spf_in_thread, domain, lookup)

    def _spf_in_thread(self, domain: str, lookup: BlockingDns) -> DnsFinding:
        try:
            record = _spf_query(lookup, domain).dns_spf(domain)
        except spf.TempError as exc:
            return DnsFinding("spf", False, f"lookup failed: {exc}")
        except spf.PermError as exc:
            return DnsFinding("spf", False, f"permerror: {exc}")
        if record is None:
            return DnsFinding("spf", False, f"no SPF record (v=spf1) for {domain}")
        if not self.public_addresses:
            return DnsFinding("spf", False, f"node.public_addresses not set; record: {record}")
        verdicts = []
        for ip in self.public_addresses:
            result, _, text = _spf_query(lookup, domain, ip).check(record)
            verdicts.append((ip, result, text))
        ok = all(result == "pass" for _, result, _ in verdicts)
        said = ", ".join(
            f"{ip}: {result}" + (f" ({text})" if result in ("temperror", "permerror") else "")
            for ip, result, text in verdicts
        )
        return DnsFinding("spf", ok, f"{record} ({said})")

    async def _dkim(self, domain: str) -> list[DnsFinding]:
        try:
            keys = self.keys.active(domain)
        except Exception as exc:  # a key file that cannot be read (ConfigError, OSError)
            return [DnsFinding("dkim", False, f"check failed: {exc}")]
        if keys is None:
            return [
                DnsFinding(
                    "dkim",
                    False,
                    f"no DKIM key for {domain} in {self.keys.root} (ugem dkim keygen {domain})",
                )
            ]
        wanted: list[tuple[str, str, PublicKey]] = [("dkim", keys.selector, keys.rsa.public_key())]
        if keys.ed25519 is not None:
            wanted.append(("dkim-ed25519", keys.ed25519_selector, keys.ed25519.public_key()))
        return list(
            await asyncio.gather(
                *(self._guarded(n, self._dkim_record(n, s, domain, k)) for n, s, k in wanted)
            )
        )

    async def _dkim_record(
        self, name: str, selector: str, domain: str, public: PublicKey
    ) -> DnsFinding:
        where = f"{selector}._domainkey.{domain}"
        texts = await self._txt(where)
        if not texts:
            return DnsFinding(name, False, f"{where}: no TXT record; publish: {txt_record(public)}")
        faults = [publishes(text, public) for text in texts]
        for text, fault in zip(texts, faults, strict=True):
            if not fault:
                return DnsFinding(name, True, f"{where}: {text}")
        return DnsFinding(name, False, f"{where}: {faults[0]}: {texts[0]}")

    async def _dmarc(self, domain: str) -> DnsFinding:
        where = f"_dmarc.{domain}"
        texts = [t for t in await self._txt(where) if DMARC_RE.match(t)]
        if not texts:
            return DnsFinding("dmarc", False, f"{where}: no v=DMARC1 record")
        if len(texts) > 1:
            why = f"{len(texts)} v=DMARC1 records (RFC 7489 6.6.3: then none applies)"
            return DnsFinding("dmarc", False, f"{where}: {why}: {' | '.join(texts)}")
        text = texts[0]
        try:
            tags = parse_tag_value(text.encode("utf-8"))
        except InvalidTagValueList:
            return DnsFinding("dmarc", False, f"{where}: malformed: {text}")
        policy = tags.get(b"p", b"").decode("ascii", "replace").strip().lower()
        if policy not in DMARC_POLICIES:
            why = f"p={policy} is not one of {', '.join(DMARC_POLICIES)}" if policy else "no p="
            return DnsFinding("dmarc", False, f"{where}: {why}: {text}")
        return DnsFinding("dmarc", True, f"p={policy}: {text}")


def readiness_from_config(config: Config) -> DnsReadiness:
    """The node's check: `[delivery]`'s resolver, the key directory, `[node] public_addresses`."""
    return DnsReadiness(config.delivery, KeyStore(key_path(config)), config.node.public_addresses)
