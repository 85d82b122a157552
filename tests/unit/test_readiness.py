"""The DNS readiness check (`relay.readiness`) against records served by a private dnsmasq.

Each finding passes only when the domain is set up (MX hosts; an SPF record
that pyspf evaluates to pass for every one of the gateway's addresses, within
the RFC 7208 lookup limits; the DKIM key records of the active selector
carrying the keys in the key directory; one DMARC record with a policy), and
fails with the record found or the reason otherwise. A resolver that does
not answer gives failed findings, never an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from relay.readiness import DnsFinding, DnsReadiness, publishes
from ugem.adapters.readiness import application_check
from ugem.core.config import DeliveryConfig
from ugem.core.dkim_keys import KeyStore, dns_records, txt_record
from ugem.core.errors import UsageError
from ugem.core.services.applications import Finding

GATEWAY = ("203.0.113.9", "2001:db8::9")
READY, OTHER = "ready.kz", "other.kz"
DMARC = "v=DMARC1; p=reject; rua=mailto:dmarc@ready.kz"
ELEVEN_INCLUDES = " ".join(f"include:i{n}.other.kz" for n in range(11))  # RFC 7208 4.6.4: 10


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    """ready.kz with RSA + Ed25519 (s1), other.kz with RSA only (o1)."""
    store = KeyStore(tmp_path_factory.mktemp("keys"))
    store.keygen(READY, "s1", with_ed25519=True)
    store.keygen(OTHER, "o1", with_ed25519=False)
    return store


def key_records(keys: KeyStore, domain: str) -> dict[str, str]:
    made = keys.active(domain)
    assert made is not None
    return dict(dns_records(made))


def ready_zone(keys: KeyStore) -> dict[str, Any]:
    """ready.kz set up right: MX, SPF (one address directly, one by include), DKIM, DMARC."""
    return {
        "mx": {READY: [(20, "mx2.ready.kz"), (10, "mx1.ready.kz")]},
        "txt": key_records(keys, READY)
        | {
            READY: ["v=spf1 ip4:203.0.113.9 include:_spf.ready.kz -all", "google-site=x"],
            "_spf.ready.kz": "v=spf1 ip6:2001:db8::/64 -all",
            "_dmarc.ready.kz": DMARC,
        },
    }


async def check(
    dns: Any, keys: KeyStore, domain: str, addresses: Sequence[str] = GATEWAY
) -> dict[str, DnsFinding]:
    config = DeliveryConfig(dns_servers=[dns.address], dns_timeout=2.0)
    found = await DnsReadiness(config, keys, addresses).check(domain)
    return {f.name: f for f in found}


async def test_a_ready_domain_passes_everything_with_the_records_found(
    keys: KeyStore, dns_server: Any
) -> None:
    dns = await dns_server(**ready_zone(keys))
    config = DeliveryConfig(dns_servers=[dns.address], dns_timeout=2.0)
    found = await DnsReadiness(config, keys, GATEWAY).check("Ready.KZ.")
    assert [(f.name, f.ok) for f in found] == [
        ("mx", True), ("spf", True), ("dkim", True), ("dkim-ed25519", True), ("dmarc", True),
    ]  # fmt: skip
    by_name = {f.name: f.record for f in found}
    assert by_name["mx"] == "10 mx1.ready.kz, 20 mx2.ready.kz"
    assert by_name["spf"] == (
        "v=spf1 ip4:203.0.113.9 include:_spf.ready.kz -all (203.0.113.9: pass, 2001:db8::9: pass)"
    )
    rsa_name, rsa_txt = next(iter(key_records(keys, READY).items()))
    assert by_name["dkim"] == f"{rsa_name}: {rsa_txt}"
    assert by_name["dkim-ed25519"].startswith("s1-ed25519._domainkey.ready.kz: v=DKIM1; k=ed25519")
    assert by_name["dmarc"] == f"p=reject: {DMARC}"


async def test_spf_fails_for_an_address_it_does_not_authorise(
    keys: KeyStore, dns_server: Any
) -> None:
    dns = await dns_server(**ready_zone(keys))
    found = await check(dns, keys, READY, ("203.0.113.9", "198.51.100.7"))
    assert not found["spf"].ok
    assert found["spf"].record.endswith("(203.0.113.9: pass, 198.51.100.7: fail)")


async def test_spf_without_the_gateways_addresses_fails_saying_so(
    keys: KeyStore, dns_server: Any
) -> None:
    dns = await dns_server(**ready_zone(keys))
    found = await check(dns, keys, READY, ())
    assert not found["spf"].ok
    assert found["spf"].record == (
        "node.public_addresses not set; record: v=spf1 ip4:203.0.113.9 include:_spf.ready.kz -all"
    )


@pytest.mark.parametrize(
    ("records", "note"),
    [
        ([], "no SPF record (v=spf1) for other.kz"),
        (["v=spf1 ip4:203.0.113.9 -all", "v=spf1 -all"], "permerror: Two or more type TXT"),
        (["v=spf1 ip4:203.0.113.9 ~all"], "(203.0.113.9: pass, 2001:db8::9: softfail)"),
        (["v=spf1 ?all"], "(203.0.113.9: neutral, 2001:db8::9: neutral)"),
        ([f"v=spf1 {ELEVEN_INCLUDES} ip4:0.0.0.0/0 -all"],
         "permerror (SPF Permanent Error: Too many DNS lookups)"),
        (["v=spf1 a:v1.other.kz a:v2.other.kz a:v3.other.kz ip4:0.0.0.0/0 ip6:::/0 -all"],
         "permerror (SPF Permanent Error: Void lookup limit of 2 exceeded)"),
    ],
)  # fmt: skip
async def test_spf_failures_show_the_outcome(
    keys: KeyStore, dns_server: Any, records: list[str], note: str
) -> None:
    included = {f"i{n}.other.kz": "v=spf1 -all" for n in range(11)}
    dns = await dns_server(txt=({OTHER: records} if records else {}) | included)
    found = await check(dns, keys, OTHER)
    assert not found["spf"].ok
    assert note in found["spf"].record, found["spf"].record


@pytest.mark.parametrize(
    ("mx", "note"),
    [
        ({OTHER: [(0, ".")]}, "null MX (RFC 7505): other.kz takes no mail"),
        ({}, "no such domain: other.kz (NXDOMAIN)"),
    ],
)
async def test_mx_absent_or_null_fails(
    keys: KeyStore, dns_server: Any, mx: dict[str, Any], note: str
) -> None:
    dns = await dns_server(mx=mx)
    found = await check(dns, keys, OTHER)
    assert (found["mx"].ok, found["mx"].record) == (False, note)


async def test_a_domain_without_mx_records_fails(keys: KeyStore, dns_server: Any) -> None:
    dns = await dns_server(txt={OTHER: "v=spf1 -all"})  # the name exists: NODATA for MX
    found = await check(dns, keys, OTHER)
    assert (found["mx"].ok, found["mx"].record) == (False, "no MX record for other.kz")


async def test_dkim_record_of_another_key_or_missing_fails(keys: KeyStore, dns_server: Any) -> None:
    stale = key_records(keys, OTHER)["o1._domainkey.other.kz"]  # other.kz's key, ready.kz's name
    dns = await dns_server(txt={"s1._domainkey.ready.kz": stale})
    found = await check(dns, keys, READY)
    assert not found["dkim"].ok and not found["dkim-ed25519"].ok
    assert found["dkim"].record == f"s1._domainkey.ready.kz: p= is another key than ours: {stale}"
    ed_key = keys.active(READY)
    assert ed_key is not None and ed_key.ed25519 is not None
    assert found["dkim-ed25519"].record == (
        "s1-ed25519._domainkey.ready.kz: no TXT record; publish: "
        + txt_record(ed_key.ed25519.public_key())
    )


async def test_dkim_without_a_key_in_the_key_directory_names_keygen(
    keys: KeyStore, dns_server: Any
) -> None:
    dns = await dns_server(txt={"_dmarc.nokey.kz": "v=DMARC1; p=none"})
    found = await check(dns, keys, "nokey.kz")
    assert not found["dkim"].ok
    assert found["dkim"].record.endswith("(ugem dkim keygen nokey.kz)")
    assert (found["dmarc"].ok, found["dmarc"].record) == (True, "p=none: v=DMARC1; p=none")


@pytest.mark.parametrize(
    ("records", "note"),
    [
        (["v=spf1 -all"], "_dmarc.other.kz: no v=DMARC1 record"),
        (["v=DMARC1; p=none", "v=DMARC1; p=reject"], "2 v=DMARC1 records"),
        (["v=DMARC1; rua=mailto:d@other.kz"], "_dmarc.other.kz: no p=: v=DMARC1;"),
        (["v=DMARC1; p=block"], "p=block is not one of none, quarantine, reject"),
    ],
)
async def test_dmarc_missing_doubled_or_without_policy_fails(
    keys: KeyStore, dns_server: Any, records: list[str], note: str
) -> None:
    dns = await dns_server(txt={"_dmarc.other.kz": records})
    found = await check(dns, keys, OTHER)
    assert not found["dmarc"].ok
    assert note in found["dmarc"].record, found["dmarc"].record


async def test_a_resolver_that_does_not_answer_gives_failed_findings(keys: KeyStore) -> None:
    config = DeliveryConfig(dns_servers=["127.0.0.1:9"], dns_timeout=0.2)
    found = await DnsReadiness(config, keys, GATEWAY).check(OTHER)
    assert [(f.name, f.ok) for f in found] == [
        ("mx", False), ("spf", False), ("dkim", False), ("dmarc", False),
    ]  # fmt: skip
    assert found[0].record == "lookup failed: MX other.kz: timed out"
    assert found[1].record == "lookup failed: TXT other.kz: timed out"


async def test_a_bad_resolver_setting_and_an_unreadable_key_are_findings(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path)
    keys.keygen(OTHER, "o1", with_ed25519=False)
    (tmp_path / OTHER / "o1.rsa.pem").write_text("not a key")
    config = DeliveryConfig(dns_servers=["not-an-address"], dns_timeout=0.2)
    found = await DnsReadiness(config, keys, GATEWAY).check(OTHER)
    assert [f.ok for f in found] == [False] * 4
    assert "delivery.dns_servers" in found[0].record
    assert found[2].name == "dkim" and found[2].record.startswith("check failed: ")
    assert "o1.rsa.pem" in found[2].record


async def test_a_name_that_is_no_domain_is_a_usage_error(keys: KeyStore) -> None:
    with pytest.raises(UsageError, match="not a domain"):
        await DnsReadiness(DeliveryConfig(), keys, GATEWAY).check("not a domain")


async def test_the_application_provider_gives_the_findings_as_application_checks(
    keys: KeyStore, dns_server: Any
) -> None:
    dns = await dns_server(**ready_zone(keys))
    config = DeliveryConfig(dns_servers=[dns.address], dns_timeout=2.0)
    findings = await application_check(DnsReadiness(config, keys, GATEWAY[:1]))(READY)
    assert all(isinstance(f, Finding) and f.ok and f.by == "auto" for f in findings)
    assert [f.name for f in findings] == ["mx", "spf", "dkim", "dkim-ed25519", "dmarc"]


def test_key_record_matching(keys: KeyStore) -> None:
    made = keys.active(READY)
    assert made is not None and made.ed25519 is not None
    rsa_pub, ed_pub = made.rsa.public_key(), made.ed25519.public_key()
    rsa_txt = txt_record(rsa_pub)
    p = rsa_txt.partition("p=")[2]
    spaced = "v=DKIM1;k=rsa; t=s; p=" + " ".join(p[i : i + 60] for i in range(0, len(p), 60))
    assert publishes(spaced, rsa_pub) == ""
    assert publishes(rsa_txt.replace("v=DKIM1; ", ""), rsa_pub) == ""  # v= and k= optional
    assert publishes(rsa_txt, ed_pub) == "k= is not ed25519"
    assert publishes(rsa_txt.replace("DKIM1", "DKIM2"), rsa_pub) == "v= is not DKIM1"
    assert publishes("v=DKIM1; k=rsa; p=", rsa_pub) == "p= is empty (the key is revoked)"
    assert publishes("v=DKIM1; k=rsa", rsa_pub) == "no p= tag"
    assert publishes("v=DKIM1; k=rsa; p=***", rsa_pub) == "p= is not base64"
    assert publishes("v=DKIM1; v=DKIM1", rsa_pub).startswith("not a DKIM key record")
