"""relay.inbound.dmarc: the author domain, policy discovery over dnsmasq, alignment, verdicts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from relay.dns import AuthDns
from relay.header_block import Header
from relay.inbound.dkim_verify import DkimResult
from relay.inbound.dmarc import (
    Author,
    Discovery,
    DmarcLookup,
    DmarcRecord,
    RecordError,
    aligned,
    author_of,
    organizational_domain,
    parse_record,
    verdict,
)
from relay.inbound.spf import SpfResult
from tests.support.silent_dns import SilentDns
from ugem.core.config import DeliveryConfig

REJECT = DmarcRecord("bank.kz", p="reject", sp="quarantine", adkim="r", aspf="r", pct=100)
SPF_NONE = SpfResult("none", "mailfrom", "", "")


def spf_pass(domain: str) -> SpfResult:
    return SpfResult("pass", "mailfrom", f"bounce@{domain}", domain)


# -- the author ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (b"From: Boss <Boss@BANK.kz.>\r\nTo: a@b.kz\r\n", Author("bank.kz")),
        (b"from:\r\n boss@bank.kz\r\n", Author("bank.kz")),
        (b"To: a@b.kz\r\n", Author(None)),
        (b"From: undisclosed-recipients:;\r\n", Author(None)),
        (b"From: boss@localhost\r\n", Author(None)),
        (b"From: a@bank.kz\r\nFrom: a@evil.example\r\n", Author(None, several=True)),
        (b"From: a@bank.kz, b@evil.example\r\n", Author(None, several=True)),
    ],
)
def test_author_of_needs_exactly_one_from_address(block: bytes, expected: Author) -> None:
    assert author_of(Header.parse(block)) == expected


@pytest.mark.parametrize(
    ("domain", "org"),
    [
        ("mail.bank.kz", "bank.kz"),
        ("bank.kz", "bank.kz"),
        ("a.b.mdai.gov.kz", "mdai.gov.kz"),
        ("gov.kz", "gov.kz"),
        ("x.shop.co.uk", "shop.co.uk"),
        ("deep.sub.example.org", "example.org"),
    ],
)
def test_organizational_domain(domain: str, org: str) -> None:
    assert organizational_domain(domain) == org


@pytest.mark.parametrize(
    ("domain", "org"),
    [
        ("a.b.gov.kz", "b.gov.kz"),
        ("x.co.uk", "x.co.uk"),
        ("a.b.k12.ca.us", "b.k12.ca.us"),  # a three-label suffix (k12.ca.us)
        ("www.city.kobe.jp", "city.kobe.jp"),  # an exception (!city.kobe.jp) to *.kobe.jp
        ("mail.school.sch.uk", "mail.school.sch.uk"),  # a wildcard: school.sch.uk is public
        ("pages.foo.github.io", "foo.github.io"),  # the list's private section
        ("mail.bank.zzz", "bank.zzz"),  # a top-level domain the list does not know
        ("co.uk", "co.uk"),  # a public suffix is its own
    ],
)
def test_organizational_domain_by_the_public_suffix_list(domain: str, org: str) -> None:
    """Cases a table of second-level suffixes got wrong (all but the first two, and co.uk)."""
    assert organizational_domain(domain) == org


def test_names_under_a_private_suffix_are_not_aligned_with_each_other() -> None:
    assert not aligned("foo.github.io", "bar.github.io", "r")
    assert aligned("www.foo.github.io", "foo.github.io", "r")


def test_alignment_relaxed_and_strict() -> None:
    assert aligned("mail.bank.kz", "bank.kz", "r")
    assert not aligned("mail.bank.kz", "bank.kz", "s")
    assert aligned("bank.kz", "bank.kz", "s")
    assert not aligned("minfin.gov.kz", "mdai.gov.kz", "r")  # gov.kz is a registry suffix
    assert not aligned("", "bank.kz", "r")


# -- the record ------------------------------------------------------------------------------


def test_parse_record_reads_the_policy_tags() -> None:
    got = parse_record("v=DMARC1; p=Reject; sp=none; adkim=s; aspf=x; pct=30; rua=m", "bank.kz")
    assert got == DmarcRecord("bank.kz", p="reject", sp="none", adkim="s", aspf="r", pct=30)
    assert parse_record("v=DMARC1; p=quarantine", "a.kz").sp == "quarantine"  # sp defaults to p
    assert parse_record("v=DMARC1; p=none; pct=200", "a.kz").pct == 100


def test_a_record_without_a_valid_policy_is_an_error_unless_it_has_rua() -> None:
    with pytest.raises(RecordError):
        parse_record("v=DMARC1; p=block", "bank.kz")
    assert parse_record("v=DMARC1; p=block; rua=mailto:d@bank.kz", "bank.kz").p == "none"


ZONE = {
    "_dmarc.bank.kz": ["v=DMARC1; p=reject; sp=quarantine", "some other text"],
    "_dmarc.twice.kz": ["v=DMARC1; p=reject", "v=DMARC1; p=none"],
    "_dmarc.broken.kz": "v=DMARC1; p=maybe",
    "_dmarc.sub.twice.kz": "not dmarc",
}


async def discover(lookup: DmarcLookup, author: str) -> Discovery:
    return await lookup.discover(author, asyncio.get_running_loop().time() + 10)


@pytest.fixture
async def lookup(dns_server: Any) -> DmarcLookup:
    dns = await dns_server(txt=ZONE)
    return DmarcLookup(AuthDns(DeliveryConfig(dns_servers=[dns.address], dns_timeout=2.0)))


async def test_discovery_at_the_author_domain(lookup: DmarcLookup) -> None:
    got = await discover(lookup, "bank.kz")
    assert got.record == DmarcRecord("bank.kz", "reject", "quarantine", "r", "r", 100)


async def test_discovery_falls_back_to_the_organizational_domain(lookup: DmarcLookup) -> None:
    got = await discover(lookup, "news.mail.bank.kz")
    assert got.record is not None and got.record.domain == "bank.kz"


async def test_several_records_or_none_mean_no_policy(lookup: DmarcLookup) -> None:
    assert await discover(lookup, "twice.kz") == Discovery(None, reason="several DMARC records")
    assert await discover(lookup, "sub.twice.kz") == Discovery(
        None, reason="several DMARC records"
    )  # nothing at sub.twice.kz: twice.kz's two records
    assert await discover(lookup, "nothing.kz") == Discovery(None, reason="no DMARC record")


async def test_an_invalid_record_is_permerror(lookup: DmarcLookup) -> None:
    assert (await discover(lookup, "broken.kz")).error == "permerror"


async def test_a_lookup_that_never_answers_is_temperror(silent_dns: SilentDns) -> None:
    config = DeliveryConfig(dns_servers=[silent_dns.address], dns_timeout=0.3)
    got = await discover(DmarcLookup(AuthDns(config)), "bank.kz")
    assert (got.record, got.error) == (None, "temperror")


# -- the verdict -----------------------------------------------------------------------------


def test_aligned_spf_pass_passes() -> None:
    got = verdict(Author("bank.kz"), Discovery(REJECT), spf_pass("mail.bank.kz"), [], 0.5)
    assert (got.result, got.policy, got.disposition) == ("pass", "reject", "none")


def test_strict_spf_alignment_needs_the_same_name() -> None:
    strict = DmarcRecord("bank.kz", "reject", "reject", "r", "s", 100)
    got = verdict(Author("bank.kz"), Discovery(strict), spf_pass("mail.bank.kz"), [], 0.5)
    assert (got.result, got.disposition) == ("fail", "reject")


def test_aligned_dkim_pass_passes_despite_spf_fail() -> None:
    spf = SpfResult("fail", "mailfrom", "x@forwarder.example", "forwarder.example")
    dkims = [DkimResult("fail", "evil.example", "s"), DkimResult("pass", "bank.kz", "s1")]
    assert verdict(Author("bank.kz"), Discovery(REJECT), spf, dkims, 0.5).result == "pass"


def test_unaligned_passes_fail_with_the_policy() -> None:
    dkims = [DkimResult("pass", "evil.example", "s")]
    got = verdict(Author("bank.kz"), Discovery(REJECT), spf_pass("evil.example"), dkims, 0.5)
    assert (got.result, got.author, got.policy, got.disposition) == (
        "fail",
        "bank.kz",
        "reject",
        "reject",
    )


def test_a_subdomain_gets_sp_when_the_record_is_the_organizations() -> None:
    got = verdict(Author("news.bank.kz"), Discovery(REJECT), SPF_NONE, [], 0.5)
    assert (got.policy, got.disposition) == ("quarantine", "quarantine")


def test_pct_applies_the_policy_to_that_share_and_a_milder_one_to_the_rest() -> None:
    half = DmarcRecord("bank.kz", "reject", "reject", "r", "r", 50)
    hit = verdict(Author("bank.kz"), Discovery(half), SPF_NONE, [], 0.49)
    spared = verdict(Author("bank.kz"), Discovery(half), SPF_NONE, [], 0.5)
    assert (hit.disposition, spared.disposition) == ("reject", "quarantine")


def test_an_aligned_temporary_error_makes_a_temperror_not_a_fail() -> None:
    spf = SpfResult("temperror", "mailfrom", "a@bank.kz", "bank.kz")
    got = verdict(Author("bank.kz"), Discovery(REJECT), spf, [], 0.5)
    assert (got.result, got.disposition) == ("temperror", "none")
    dkims = [DkimResult("temperror", "bank.kz", "s1")]
    assert verdict(Author("bank.kz"), Discovery(REJECT), SPF_NONE, dkims, 0.5).result == (
        "temperror"
    )


def test_no_author_no_record_and_lookup_errors() -> None:
    assert verdict(Author(None), Discovery(REJECT), SPF_NONE, [], 0.5).result == "none"
    several = verdict(Author(None, several=True), Discovery(None), SPF_NONE, [], 0.5)
    assert (several.result, several.several_authors) == ("permerror", True)
    assert verdict(Author("a.kz"), Discovery(None), SPF_NONE, [], 0.5).result == "none"
    trouble = Discovery(None, "temperror", "timed out")
    assert verdict(Author("a.kz"), trouble, SPF_NONE, [], 0.5).result == "temperror"
