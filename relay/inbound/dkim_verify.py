"""DKIM verification (RFC 6376) of mail from the internet, with dkimpy and the node's resolver.

`DkimVerifier(dns, max_signatures).verify(text, deadline)` checks the first
`max_signatures` DKIM-Signature fields of a message (top first; further ones
are ignored, so a message cannot make the gateway do unbounded work) and
answers one `DkimResult` per signature: its d= and s= and one of (RFC 8601
2.7.1)

- pass: the signature verifies with the published key;
- fail: it does not (body hash mismatch, altered headers, wrong key);
- neutral: it cannot be processed (syntax errors, unknown algorithm, t= in
  the future, x= past, an Ed25519 key without PyNaCl);
- temperror: the key lookup got no answer in time (or failed: SERVFAIL);
- permerror: no key is published for it, or the key record is unusable
  (bad syntax, RSA shorter than 1024 bits).

No signature at all is an empty list (dkim=none). The message comes parsed
(`relay.header_block.Header`, linear in its size) and dkimpy's quadratic
parser and body canonicalization are never used (`parsed_message`,
`relay.dkim_canon`). dkimpy is synchronous: it runs in a worker thread (of
the executor given, else the loop's default one), its key lookups (its
`dnsfunc`) go through `relay.dns` (a `BlockingDns`: the node's resolver,
asked on the event loop), bounded by `[delivery] dns_timeout` and the
deadline; a lookup with no answer (`DnsTrouble`) and what is not done by the
deadline are temperror. Errors dkimpy does not document (bugs) are not
swallowed: they reach the caller (`relay.inbound.checks` answers them with
451).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from dataclasses import dataclass

import dkim
import dkim.util
import dns.rdatatype
import dns.rdtypes.ANY.TXT

from relay.dkim_canon import relaxed_body as _linear  # noqa: F401 (puts it in dkimpy)
from relay.dns import WAKE_SLACK, AuthDns, BlockingDns, DnsTrouble
from relay.header_block import Header, dkim_fields

SIGNATURE_FIELD = "dkim-signature"
MIN_KEY_BITS = 1024  # RFC 8301 3.2: shorter RSA keys must not be treated as valid
_library_log = logging.getLogger("relay.inbound.dkim_verify.dkimpy")


@dataclass(frozen=True)
class DkimResult:
    """The outcome for one DKIM-Signature field."""

    result: str  # pass, fail, neutral, temperror, permerror
    domain: str  # d= ("" if the field has none)
    selector: str  # s= ("" if the field has none)
    reason: str = ""


class _KeyProblem(Exception):
    """No usable key record for a signature (permerror); raised through dkimpy."""


class _KeyLookup:
    """dkimpy's `dnsfunc`: the selector's TXT record through a `BlockingDns`."""

    def __init__(self, lookup: BlockingDns) -> None:
        self.lookup = lookup

    def __call__(self, name: bytes, timeout: float = 5) -> bytes:
        try:
            text = name.decode("ascii")
        except UnicodeDecodeError as exc:
            raise _KeyProblem("the key's name is not ASCII") from exc
        records = self.lookup.query(text, dns.rdatatype.TXT)  # DnsTrouble passes through
        keys = [b"".join(r.strings) for r in records if isinstance(r, dns.rdtypes.ANY.TXT.TXT)]
        if not keys:
            raise _KeyProblem(f"no key published at {text.rstrip('.')}")
        try:
            dkim.evaluate_pk(name, keys[0])
        except dkim.KeyFormatError as exc:
            raise _KeyProblem(f"unusable key record at {text.rstrip('.')}: {exc}") from exc
        return bytes(keys[0])


def signature_ids(header: Header) -> list[tuple[str, str]]:
    """(d=, s=) of every DKIM-Signature field, top first ("" where one is missing)."""
    return [_ids(value) for value in header.values(SIGNATURE_FIELD)]


def _ids(value: bytes) -> tuple[str, str]:
    try:
        tags = dkim.util.parse_tag_value(value.replace(b"\r\n", b""))
    except dkim.util.InvalidTagValueList:
        return "", ""
    return (
        tags.get(b"d", b"").decode("ascii", "replace"),
        tags.get(b"s", b"").decode("ascii", "replace"),
    )


class DkimVerifier:
    def __init__(self, dns: AuthDns, max_signatures: int, executor: Executor | None = None) -> None:
        self.dns = dns
        self.max_signatures = max_signatures
        self.executor = executor  # the worker threads (None: the loop's default executor)

    async def verify(self, header: Header, deadline: float) -> list[DkimResult]:
        """A result per checked signature (none: empty), done by `deadline` or temperror."""
        ids = signature_ids(header)[: self.max_signatures]
        if not ids:
            return []
        loop = asyncio.get_running_loop()
        lookup = self.dns.blocking(loop, deadline)
        try:
            async with asyncio.timeout_at(deadline + WAKE_SLACK):
                return await loop.run_in_executor(
                    self.executor, verify_all, header, lookup, len(ids)
                )
        except TimeoutError:
            return [DkimResult("temperror", d, s, "DKIM check ran out of time") for d, s in ids]


def verify_all(header: Header, lookup: BlockingDns, count: int) -> list[DkimResult]:
    """The blocking verification of the first `count` signatures (run in a worker thread)."""
    try:
        message = parsed_message(header)
    except ValueError as exc:
        return [DkimResult("permerror", "", "", f"message cannot be parsed: {exc}")]
    found = sum(1 for name, _ in message.headers if name.lower() == SIGNATURE_FIELD.encode())
    return [verify_one(message, idx, lookup) for idx in range(min(count, found))]


def parsed_message(header: Header) -> dkim.DKIM:
    """A dkimpy message from our parse (ValueError: a header dkimpy would refuse).

    dkimpy's own parser (`dkim.rfc822_parse`, run by `DKIM(text)`) is quadratic
    in the lines of a folded field, so the message is made empty and given
    `headers` and `body` (dkimpy's attributes, named in tests/unit/test_dkim_canon.py).
    """
    message = dkim.DKIM(None, logger=_library_log, minkey=MIN_KEY_BITS)
    message.headers = dkim_fields(header)
    message.body = header.body
    return message


def verify_one(message: dkim.DKIM, idx: int, lookup: BlockingDns) -> DkimResult:
    signatures = [v for n, v in message.headers if n.lower() == SIGNATURE_FIELD.encode()]
    domain, selector = _ids(signatures[idx])
    try:
        sig, include, headers = message.verify_headerprep(idx)
    except dkim.DKIMException as exc:
        return DkimResult("neutral", domain, selector, f"signature not usable: {exc}")
    try:
        good = message.verify_sig(sig, include, headers[idx], _KeyLookup(lookup))
    except DnsTrouble as exc:
        return DkimResult("temperror", domain, selector, str(exc))
    except (_KeyProblem, dkim.KeyFormatError) as exc:
        return DkimResult("permerror", domain, selector, str(exc))
    except dkim.ValidationError as exc:
        return DkimResult("fail", domain, selector, str(exc))
    except dkim.DKIMException as exc:
        return DkimResult("neutral", domain, selector, f"signature not usable: {exc}")
    if good:
        return DkimResult("pass", domain, selector)
    return DkimResult("fail", domain, selector, "signature does not verify")
