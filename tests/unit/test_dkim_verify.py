"""relay.inbound.dkim_verify: mail signed by the project's own signer, keys served by dnsmasq.

The signer (`relay.deliver.dkim_sign.DkimSigner`) signs with RSA and Ed25519 keys made by
`ugem.core.dkim_keys.KeyStore`; the verifier reads the key records from dnsmasq.
An altered body or header fails; a missing key is permerror, an unusable
signature neutral, a key lookup that never answers temperror; at most
`max_signatures` signatures are looked at.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from relay.deliver.dkim_sign import DkimSigner
from relay.dns import AuthDns
from relay.header_block import Header
from relay.inbound.dkim_verify import DkimResult, DkimVerifier, signature_ids
from tests.support.clients import message
from tests.support.silent_dns import SilentDns
from ugem.core.clock import SystemClock
from ugem.core.config import DeliveryConfig
from ugem.core.dkim_keys import KeySet, KeyStore, dns_records

DOMAIN = "sender.example"
TEXT = message(f"a@{DOMAIN}", "b@mdai.gov.kz", "Quarterly report", body="Figures.\r\n")


@pytest.fixture
def keys(tmp_path: Path) -> KeySet:
    return KeyStore(tmp_path / "keys").keygen(DOMAIN, "s1", with_ed25519=True)


@pytest.fixture
def signed(tmp_path: Path, keys: KeySet) -> bytes:
    """TEXT with the project signer's two signatures (Ed25519 on top, then RSA)."""
    signer = DkimSigner(KeyStore(tmp_path / "keys"), "", SystemClock())
    return signer.sign(TEXT, [DOMAIN], DOMAIN) + TEXT


async def verifier_for(dns_server: Any, txt: dict[str, str], limit: int = 3) -> DkimVerifier:
    dns = await dns_server(txt=txt)
    config = DeliveryConfig(dns_servers=[dns.address], dns_timeout=2.0)
    return DkimVerifier(AuthDns(config), limit)


async def verify(verifier: DkimVerifier, text: bytes) -> list[DkimResult]:
    return await verifier.verify(Header.parse(text), asyncio.get_running_loop().time() + 10)


async def test_signatures_of_our_signer_pass(keys: KeySet, signed: bytes, dns_server: Any) -> None:
    verifier = await verifier_for(dns_server, dict(dns_records(keys)))
    got = await verify(verifier, signed)
    assert [(r.result, r.domain, r.selector) for r in got] == [
        ("pass", DOMAIN, "s1-ed25519"),
        ("pass", DOMAIN, "s1"),
    ]


async def test_an_altered_body_fails(keys: KeySet, signed: bytes, dns_server: Any) -> None:
    verifier = await verifier_for(dns_server, dict(dns_records(keys)))
    altered = signed.replace(b"Figures.", b"Figures!")
    got = await verify(verifier, altered)
    assert [r.result for r in got] == ["fail", "fail"]
    assert all("body hash" in r.reason for r in got)


async def test_an_altered_signed_header_fails(keys: KeySet, signed: bytes, dns_server: Any) -> None:
    verifier = await verifier_for(dns_server, dict(dns_records(keys)))
    altered = signed.replace(b"Subject: Quarterly report", b"Subject: Quarterly report!")
    assert [r.result for r in await verify(verifier, altered)] == ["fail", "fail"]


async def test_no_published_key_is_permerror(signed: bytes, dns_server: Any) -> None:
    verifier = await verifier_for(dns_server, {"other.example": "v=spf1 -all"})
    got = await verify(verifier, signed)
    assert [r.result for r in got] == ["permerror", "permerror"]
    assert "no key published at s1._domainkey.sender.example" in got[1].reason


async def test_an_unusable_key_record_is_permerror(
    keys: KeySet, signed: bytes, dns_server: Any
) -> None:
    records = {name: "v=DKIM1; k=rsa; p=bm90IGEga2V5" for name, _ in dns_records(keys)}
    verifier = await verifier_for(dns_server, records)
    assert [r.result for r in await verify(verifier, signed)] == ["permerror"] * 2


async def test_a_signature_without_b_is_neutral(keys: KeySet, dns_server: Any) -> None:
    verifier = await verifier_for(dns_server, dict(dns_records(keys)))
    broken = b"DKIM-Signature: v=1; a=rsa-sha256; d=sender.example; s=s1; h=from; bh=AAAA\r\n"
    got = await verify(verifier, broken + TEXT)
    assert [(r.result, r.domain, r.selector) for r in got] == [("neutral", DOMAIN, "s1")]


async def test_unsigned_mail_has_no_results(dns_server: Any) -> None:
    verifier = await verifier_for(dns_server, {})
    assert await verify(verifier, TEXT) == []


async def test_at_most_max_signatures_are_verified(
    keys: KeySet, signed: bytes, dns_server: Any
) -> None:
    verifier = await verifier_for(dns_server, dict(dns_records(keys)), limit=1)
    got = await verify(verifier, signed)
    assert [(r.result, r.selector) for r in got] == [("pass", "s1-ed25519")]
    none = await verifier_for(dns_server, dict(dns_records(keys)), limit=0)
    assert await verify(none, signed) == []


async def test_a_key_lookup_that_never_answers_is_temperror(
    signed: bytes, silent_dns: SilentDns
) -> None:
    config = DeliveryConfig(dns_servers=[silent_dns.address], dns_timeout=0.3)
    verifier = DkimVerifier(AuthDns(config), 3)
    started = time.monotonic()
    got = await verify(verifier, signed)
    assert [r.result for r in got] == ["temperror", "temperror"]
    assert time.monotonic() - started < 3.0


def test_signature_ids_reads_d_and_s_of_folded_fields() -> None:
    text = (
        b"DKIM-Signature: v=1; a=rsa-sha256;\r\n d=x.example;\r\n\ts=sel; b=AA\r\nFrom: a@b\r\n\r\n"
    )
    assert signature_ids(Header.parse(text)) == [("x.example", "sel")]
