"""MTA-STS (RFC 8461): the TLS policy a recipient domain publishes for the mail sent to it.

`MtaSts.policy(domain)` answers the domain's current `StsPolicy`, or None when
it has none. It reads the TXT record `_mta-sts.<domain>` (exactly one record
starting "v=STSv1;" and carrying a valid id, else no policy: `record_id`),
then fetches `https://mta-sts.<domain>/.well-known/mta-sts.txt` with httpx.
The policy host's addresses come from the resolver of the MX lookups
(`[delivery] dns_servers`, through `relay.deliver.routing.DnsCache`); its certificate
is verified for the host name (against `tls_ca_file`, or the system's CAs);
no redirect is followed and no proxy is taken from the environment; the
whole fetch is bounded by FETCH_TIMEOUT (network time, not the clock's); the
answer must be a 200 of media type text/plain and at most 64 KiB, parsed per
RFC 8461 3.2 (`parse_policy`).

Caching (RFC 8461 3.3 and 5.1), in memory on the injected clock: a policy is
reused while its max_age lasts and the TXT id is unchanged, or the TXT record
cannot be read or is gone; a new id fetches again. A fetch that fails keeps
the cached policy until it expires, and is not tried again for the same id
before RETRY_AFTER seconds. With nothing cached, a failed lookup or fetch
means no policy: the mail goes as if the domain published none.

`StsPolicy.allows(host)` matches an MX host name against the policy's mx
patterns (RFC 8461 4.1: "*.example.org" stands for exactly one more label).
A domain's trouble never raises to the caller: each fetch is logged (INFO,
one line) and counted by result (`metrics.mta_sts_fetches`); `StsError`
(`ugem.core.errors`) carries a failure inside this module and from `parse_policy`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from relay.tls import verified_context
from ugem.core.clock import Clock
from ugem.core.errors import DeliveryError, StsError
from ugem.core.log import event
from ugem.core.metrics import Metrics

log = logging.getLogger(__name__)

HTTPS_PORT = 443
POLICY_PATH = "/.well-known/mta-sts.txt"
MAX_POLICY_BYTES = 64 * 1024  # RFC 8461 3.3
MAX_AGE_LIMIT = 31_557_600  # RFC 8461 3.2: a year; a larger max_age is read as this
FETCH_TIMEOUT = 30.0  # seconds for one policy fetch, every address of the host together
RETRY_AFTER = 300.0  # seconds before a failed fetch is tried again under the same TXT id
MAX_ADDRESSES = 4  # addresses of the policy host tried in one fetch
MAX_DOMAINS = 10_000  # domains remembered before expired entries are swept
ENFORCE, TESTING, NONE = "enforce", "testing", "none"

_STS_RECORD = re.compile(r"v=STSv1[ \t]*;")
_DELIMITER = re.compile(r"[ \t]*;[ \t]*")
_TXT_FIELD = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,31})=([\x21-\x3a\x3c\x3e-\x7e]+)")
_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_POLICY_FIELD = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,31}):[ \t]*(.*?)[ \t]*")
_MAX_AGE = re.compile(r"[0-9]{1,10}")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_MX_PATTERN = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")


def _invalid(text: str) -> StsError:
    return StsError("invalid", text)


@dataclass(frozen=True)
class StsPolicy:
    """A domain's policy as fetched under TXT id `id`; `mx` holds lowercase patterns."""

    domain: str
    id: str
    mode: str  # enforce | testing | none
    mx: tuple[str, ...]
    max_age: int  # seconds, at most MAX_AGE_LIMIT

    def allows(self, host: str) -> bool:
        """Whether the MX host name `host` matches one of the policy's mx patterns."""
        name = host.lower().rstrip(".")
        return any(mx_matches(pattern, name) for pattern in self.mx)


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 4.1: `host` is `pattern`, or, for "*.parent", one label under parent
    ("*.example.org" matches "mx.example.org", not "example.org" nor "a.b.example.org")."""
    if pattern.startswith("*."):
        label, _, parent = host.partition(".")
        return bool(label) and parent == pattern[2:]
    return host == pattern


def record_id(texts: Sequence[str]) -> str | None:
    """The id of the one MTA-STS record among a name's TXT records (RFC 8461 3.1);
    None when there is none, more than one, or it is malformed."""
    records = [text for text in texts if _STS_RECORD.match(text)]
    if len(records) != 1:
        return None
    fields = _DELIMITER.split(records[0])
    if fields[-1] == "":
        fields.pop()  # a trailing delimiter
    ident = None
    for item in fields[1:]:
        match = _TXT_FIELD.fullmatch(item)
        if match is None:
            return None
        if match[1] == "id" and ident is None:
            if not _ID.fullmatch(match[2]):
                return None
            ident = match[2]
    return ident


def parse_policy(text: str, domain: str, ident: str) -> StsPolicy:
    """A policy body (RFC 8461 3.2): "key: value" lines (LF or CRLF); of version, mode
    and max_age the first counts, mx may repeat, other keys are ignored. StsError
    ("invalid") names what is wrong."""
    first: dict[str, str] = {}
    mx: list[str] = []
    for number, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        match = _POLICY_FIELD.fullmatch(line)
        if match is None:
            raise _invalid(f"policy line {number} is not a 'key: value' field")
        if match[1] == "mx":
            mx.append(_mx_pattern(match[2]))
        else:
            first.setdefault(match[1], match[2])
    return _policy(first, mx, domain, ident)


def _mx_pattern(value: str) -> str:
    pattern = value.lower().removesuffix(".")
    if not _MX_PATTERN.fullmatch(pattern):
        raise _invalid(f"mx {value!r} is neither a host name nor a *.domain pattern")
    return pattern


def _policy(fields: dict[str, str], mx: list[str], domain: str, ident: str) -> StsPolicy:
    if fields.get("version") != "STSv1":
        raise _invalid(f"version {fields.get('version', '(none)')!r}: STSv1 required")
    mode = fields.get("mode", "")
    if mode not in (ENFORCE, TESTING, NONE):
        raise _invalid(f"mode {mode!r}: enforce, testing or none required")
    max_age = fields.get("max_age", "")
    if not _MAX_AGE.fullmatch(max_age):
        raise _invalid(f"max_age {max_age!r}: 1 to 10 digits required")
    if not mx and mode != NONE:
        raise _invalid(f"no mx pattern in a policy of mode {mode}")
    return StsPolicy(domain, ident, mode, tuple(mx), min(int(max_age), MAX_AGE_LIMIT))


class PolicyDns(Protocol):
    """The DNS lookups MTA-STS needs (`relay.deliver.routing.DnsCache` does them)."""

    async def texts(self, name: str) -> list[str]:
        """The TXT records of `name` ([] when there are none); DeliveryError on trouble."""
        ...

    async def addresses(self, host: str) -> tuple[list[str], DeliveryError | None]:
        """The addresses of `host`, and the lookup trouble met, if any."""
        ...


@dataclass(frozen=True)
class _Cached:
    policy: StsPolicy
    expires: float  # on the clock's monotonic time


@dataclass(frozen=True)
class _Failed:
    """A fetch under TXT id `ident` failed: not tried again before `retry_at`."""

    ident: str
    retry_at: float


@dataclass(eq=False)
class _Slot:
    """The lookups of one domain in progress: one at a time, the others then read the cache."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class MtaSts:
    """Policies of recipient domains, looked up through `dns` and cached on `clock`.

    `port` is where policy hosts are asked (443; tests use another); `ca_file`
    the CA certificates they are verified against ("": the system's).
    """

    def __init__(
        self,
        dns: PolicyDns,
        clock: Clock,
        metrics: Metrics,
        ca_file: str = "",
        port: int = HTTPS_PORT,
        timeout: float = FETCH_TIMEOUT,
    ) -> None:
        self.dns = dns
        self.clock = clock
        self.metrics = metrics
        self.port = port
        self.timeout = timeout
        self._ca_file = ca_file
        self._context = verified_context(ca_file) if ca_file else None  # bad file: ConfigError
        self._cache: dict[str, _Cached] = {}
        self._failed: dict[str, _Failed] = {}
        self._slots: dict[str, _Slot] = {}

    async def policy(self, domain: str) -> StsPolicy | None:
        """The policy of `domain` (canonical form) now, or None; never raises for its trouble.

        Concurrent calls for one domain wait for the first, so a policy is fetched once.
        """
        slot = self._slots.setdefault(domain, _Slot())
        slot.users += 1
        try:
            async with slot.lock:
                return await self._current(domain)
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._slots[domain]

    async def _current(self, domain: str) -> StsPolicy | None:
        now = self.clock.monotonic()
        cached = self._cached(domain, now)
        ident = await self._record_id(domain)
        if ident is None or (cached is not None and cached.id == ident):
            return cached  # RFC 8461 3.3: a cached policy holds while no new one is found
        failed = self._failed.get(domain)
        if failed is not None and failed.ident == ident and now < failed.retry_at:
            return cached
        try:
            policy = await self._fetch(domain, ident)
        except StsError as exc:
            self._counted(domain, ident, exc.result, error=str(exc), kept=cached is not None)
            self._failed[domain] = _Failed(ident, now + RETRY_AFTER)
            return cached
        self._counted(domain, ident, "ok", mode=policy.mode, max_age=policy.max_age)
        self._remember(domain, policy, now)
        return policy

    def _cached(self, domain: str, now: float) -> StsPolicy | None:
        entry = self._cache.get(domain)
        if entry is None:
            return None
        if entry.expires <= now:
            del self._cache[domain]
            return None
        return entry.policy

    async def _record_id(self, domain: str) -> str | None:
        """The id of the domain's MTA-STS TXT record; None without one or when DNS fails."""
        try:
            texts = await self.dns.texts(f"_mta-sts.{domain}")
        except DeliveryError as exc:
            event(log, "mta_sts_txt_failed", logging.DEBUG, domain=domain, error=str(exc))
            return None
        return record_id(texts)

    def _remember(self, domain: str, policy: StsPolicy, now: float) -> None:
        if len(self._cache) + len(self._failed) >= MAX_DOMAINS:
            self._cache = {d: c for d, c in self._cache.items() if c.expires > now}
            self._failed = {d: f for d, f in self._failed.items() if f.retry_at > now}
        self._cache[domain] = _Cached(policy, now + policy.max_age)
        self._failed.pop(domain, None)

    def _counted(self, domain: str, ident: str, result: str, **fields: Any) -> None:
        self.metrics.mta_sts_fetches.labels(result).inc()
        event(log, "mta_sts_fetch", logging.INFO, domain=domain, id=ident, result=result, **fields)

    # -- fetching ----------------------------------------------------------------------------

    async def _fetch(self, domain: str, ident: str) -> StsPolicy:
        text = await self._download(f"mta-sts.{domain}", time.monotonic() + self.timeout)
        return parse_policy(text, domain, ident)

    async def _download(self, host: str, deadline: float) -> str:
        """The policy text from the first address of `host` that answers over verified TLS.

        Each attempt gets the time left as httpx's timeouts (rather than being
        cancelled from outside, which would leave a half-open TLS socket behind).
        """
        addrs, trouble = await self.dns.addresses(host)
        if not addrs:
            raise StsError("failed", f"no address for {host}" + (f": {trouble}" if trouble else ""))
        error: httpx.HTTPError | None = None
        for addr in addrs[:MAX_ADDRESSES]:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                return await self._get(host, addr, left, deadline)
            except httpx.HTTPError as exc:
                error = exc
        if time.monotonic() >= deadline:
            raise StsError("failed", f"{_url(host)}: no policy within {self.timeout:g} s")
        raise StsError("failed", f"{_url(host)}: {type(error).__name__}: {error}") from error

    async def _get(self, host: str, addr: str, left: float, deadline: float) -> str:
        literal = f"[{addr}]" if ":" in addr else addr
        authority = host if self.port == HTTPS_PORT else f"{host}:{self.port}"
        async with (
            httpx.AsyncClient(
                verify=self._tls(), follow_redirects=False, trust_env=False, timeout=left
            ) as client,
            client.stream(
                "GET",
                f"https://{literal}:{self.port}{POLICY_PATH}",
                headers={"Host": authority},
                extensions={"sni_hostname": host},  # the name sent and verified
            ) as response,
        ):
            return await _policy_text(response, _url(host), deadline)

    def _tls(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = verified_context(self._ca_file)
        return self._context


def _url(host: str) -> str:
    return f"https://{host}{POLICY_PATH}"


async def _policy_text(response: httpx.Response, url: str, deadline: float) -> str:
    """The body of a 200 text/plain answer of at most MAX_POLICY_BYTES, as UTF-8 text,
    read before `deadline` (time.monotonic)."""
    if response.status_code != 200:
        raise StsError("failed", f"{url}: HTTP status {response.status_code}, 200 required")
    media = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != "text/plain":
        raise _invalid(f"{url}: content type {media or '(none)'!r}, text/plain required")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_POLICY_BYTES:
            raise _invalid(f"{url}: larger than {MAX_POLICY_BYTES} bytes")
        if time.monotonic() > deadline:
            raise StsError("failed", f"{url}: the policy came too slowly")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid(f"{url}: not UTF-8 text") from exc
