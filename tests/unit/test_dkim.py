"""DKIM signing (`relay.deliver.dkim_sign`) and its keys (`ugem.core.dkim_keys`, `ugem dkim ...`).

A signature must verify with dkimpy and with an independent implementation,
Perl's Mail::DKIM, whose key records come from a private dnsmasq; altering a
signed header or adding a second From after signing must break it. Debian
12's Mail::DKIM (1.20230212) has no Ed25519, so it checks the RSA signature
only; dkimpy checks both, its Ed25519 path only where PyNaCl is installed
(else that test is skipped, saying so).
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path
from typing import Any

import dkim
import pytest
from dkim.util import parse_tag_value

from relay.deliver.dkim_sign import DkimSigner, signed_header_names, signer_from_config
from tests.support.cli import operator
from tests.support.mail_dkim import Verdict, mail_dkim_verify, needs_mail_dkim
from tests.support.peers import require_module
from ugem.core.clock import FakeClock
from ugem.core.config import load_config
from ugem.core.dkim_keys import KeySet, KeyStore, dns_records
from ugem.core.errors import ConfigError, ConflictError, NotFoundError, UsageError

DOMAIN = "mdai.gov.kz"
SUBJECT = b"Subject: Quarterly report"
ED_INDEX, RSA_INDEX = 0, 1  # Ed25519 is prepended on top of RSA


def message(top: bytes = b"") -> bytes:
    return (
        top + b"Received: from client.test ([127.0.0.2]) by gw.test; "
        b"Fri, 1 Jan 2027 00:00:00 +0000\r\n"
        b'From: "Sender" <a@mdai.gov.kz>\r\n'
        b"To: x@example.org\r\n"
        b"Cc: y@example.org, z@example.org\r\n" + SUBJECT + b"\r\n"
        b"Date: Fri, 1 Jan 2027 00:00:00 +0000\r\n"
        b"Message-ID: <1@mdai.gov.kz>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"X-Other: not signed\r\n"
        b"\r\n"
        b"Hello,\r\n\r\n  the  report   follows.\r\n\r\n\r\n"
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    """mdai.gov.kz with RSA + Ed25519, gw.test with RSA only (RSA keygen is slow)."""
    keys = KeyStore(tmp_path_factory.mktemp("dkim"))
    keys.keygen(DOMAIN, "s1", with_ed25519=True)
    keys.keygen("gw.test", "gw1", with_ed25519=False)
    return keys


def records(store: KeyStore, *domains: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for domain in domains:
        keys = store.active(domain)
        assert keys is not None
        out.update(dns_records(keys))
    return out


def dkimpy_verify(data: bytes, txt: dict[str, str], index: int) -> bool:
    def lookup(name: bytes, timeout: int = 5) -> bytes:
        return txt[name.decode().rstrip(".")].encode()

    return bool(dkim.DKIM(data).verify(index, dnsfunc=lookup))


def signatures_of(data: bytes) -> list[dict[bytes, bytes]]:
    headers, _ = dkim.rfc822_parse(data)
    return [parse_tag_value(v) for n, v in headers if n.lower() == b"dkim-signature"]


def rsa_results(verdicts: list[Verdict]) -> list[str]:
    """Mail::DKIM's results for the RSA signatures (it has no Ed25519 to judge the others)."""
    return [v.result for v in verdicts if v.algorithm == "rsa-sha256" and v.selector == "s1"]


def signer(store: KeyStore, gateway: str = "", clock: FakeClock | None = None) -> DkimSigner:
    return DkimSigner(store, gateway, clock or FakeClock())


# -- what is signed, and how -----------------------------------------------------------------


def test_rsa_signature_verifies_with_dkimpy_and_an_altered_header_fails(store: KeyStore) -> None:
    signed = signer(store).outgoing(message(), {DOMAIN}, DOMAIN, "Q1")
    txt = records(store, DOMAIN)
    assert dkimpy_verify(signed, txt, RSA_INDEX)
    altered = signed.replace(SUBJECT, b"Subject: Quarterly report (corrected)")
    assert not dkimpy_verify(altered, txt, RSA_INDEX)


def test_ed25519_signature_verifies_with_dkimpy_and_an_altered_header_fails(
    store: KeyStore,
) -> None:
    require_module("nacl", "dkimpy verifies Ed25519 only with PyNaCl")
    signed = signer(store).outgoing(message(), {DOMAIN}, DOMAIN, "Q1")
    txt = records(store, DOMAIN)
    assert dkimpy_verify(signed, txt, ED_INDEX)
    altered = signed.replace(b"Cc: y@example.org", b"Cc: q@example.org")
    assert not dkimpy_verify(altered, txt, ED_INDEX)


def test_tags_relaxed_oversigned_no_length_time_from_clock(store: KeyStore) -> None:
    clock = FakeClock(1_800_000_000.0)
    signed = signer(store, clock=clock).outgoing(message(), {DOMAIN}, DOMAIN, "Q1")
    sigs = signatures_of(signed)
    assert [(s[b"a"], s[b"s"]) for s in sigs] == [
        (b"ed25519-sha256", b"s1-ed25519"),
        (b"rsa-sha256", b"s1"),
    ]
    for sig in sigs:
        assert sig[b"c"] == b"relaxed/relaxed" and sig[b"d"] == DOMAIN.encode()
        assert b"l" not in sig
        assert sig[b"t"] == b"1800000000"
        names = [n.strip() for n in sig[b"h"].split(b":")]
        assert names.count(b"from") == 2 and names.count(b"cc") == 2
        assert names.count(b"reply-to") == 1 and names.count(b"content-transfer-encoding") == 1
        assert b"received" not in names and b"x-other" not in names
    assert signed.endswith(message())  # prepended, over the bytes exactly as given


def test_header_names_signed_once_more_than_they_occur() -> None:
    headers = [(b"From", b"a"), (b"To", b"b"), (b"TO", b"c"), (b"In-Reply-To", b"d")]
    names = signed_header_names(headers)
    assert names.count(b"to") == 3 and names.count(b"from") == 2
    assert names.count(b"subject") == 1 and names.count(b"in-reply-to") == 1


def test_a_second_from_added_after_signing_breaks_dkimpy(store: KeyStore) -> None:
    signed = signer(store).outgoing(message(), {DOMAIN}, DOMAIN, "Q1")
    txt = records(store, DOMAIN)
    forged = b"From: ceo@mdai.gov.kz\r\n" + signed
    assert not dkimpy_verify(forged, txt, RSA_INDEX)


@needs_mail_dkim
async def test_mail_dkim_accepts_the_rsa_signature(store: KeyStore, dns_server: Any) -> None:
    dns = await dns_server(txt=records(store, DOMAIN))
    signed = signer(store).outgoing(message(), {DOMAIN}, DOMAIN, "Q1")
    verdicts, overall = mail_dkim_verify(signed, dns)
    assert overall == "pass"
    assert rsa_results(verdicts) == ["pass"]


@needs_mail_dkim
async def test_mail_dkim_rejects_an_altered_header(store: KeyStore, dns_server: Any) -> None:
    dns = await dns_server(txt=records(store, DOMAIN))
    signed = signer(store).outgoing(message(), {DOMAIN}, DOMAIN, "Q1")
    altered = signed.replace(b"To: x@example.org", b"To: attacker@example.net")
    verdicts, overall = mail_dkim_verify(altered, dns)
    assert overall == "fail"
    assert rsa_results(verdicts) == ["fail"]


@needs_mail_dkim
async def test_mail_dkim_rejects_an_added_from(store: KeyStore, dns_server: Any) -> None:
    dns = await dns_server(txt=records(store, DOMAIN))
    signed = signer(store).outgoing(message(), {DOMAIN}, DOMAIN, "Q1")
    verdicts, overall = mail_dkim_verify(b"From: ceo@mdai.gov.kz\r\n" + signed, dns)
    assert overall == "fail"
    assert rsa_results(verdicts) == ["fail"]


# -- which key signs -------------------------------------------------------------------------


def test_author_domain_of_the_connection_signs(store: KeyStore) -> None:
    signed = signer(store, "gw.test").outgoing(message(), {DOMAIN, "other.kz"}, "other.kz", "Q1")
    assert {s[b"d"] for s in signatures_of(signed)} == {DOMAIN.encode()}


def test_author_domain_of_another_connection_does_not_sign(store: KeyStore) -> None:
    signed = signer(store, "gw.test").outgoing(message(), {"other.kz"}, "other.kz", "Q1")
    sigs = signatures_of(signed)
    assert [(s[b"d"], s[b"s"]) for s in sigs] == [(b"gw.test", b"gw1")]
    assert dkimpy_verify(signed, records(store, "gw.test"), 0)


def test_no_key_and_no_gateway_domain_leaves_the_message_as_it_was(store: KeyStore) -> None:
    data = message().replace(b"a@mdai.gov.kz", b"a@other.kz")
    assert signer(store).outgoing(data, {"other.kz"}, "other.kz", "Q1") == data


def test_signing_failure_queues_unsigned_and_logs_the_queue_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys = KeyStore(tmp_path)
    keys.keygen("broken.kz", "s1", with_ed25519=False)
    (tmp_path / "broken.kz" / "s1.rsa.pem").write_text("not a key")
    data = message()
    with caplog.at_level(logging.ERROR, logger="relay.deliver.dkim_sign"):
        out = signer(keys).outgoing(data, {"broken.kz"}, "broken.kz", "QBROKEN")
    assert out == data
    failed = [r for r in caplog.records if r.getMessage() == "dkim_sign_failed"]
    assert len(failed) == 1 and failed[0].levelno == logging.ERROR
    assert failed[0].__dict__["fields"]["queue_id"] == "QBROKEN"


def test_unparsable_header_is_sent_unsigned(store: KeyStore) -> None:
    data = b"this is no header\r\n\r\nbody\r\n"
    assert signer(store, "gw.test").outgoing(data, {DOMAIN}, DOMAIN, "Q1") == data


# -- keys --------------------------------------------------------------------------------------


def test_keygen_writes_private_keys_0600_and_refuses_a_second_keygen(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path)
    made = keys.keygen("Example.KZ", "sel", with_ed25519=True)
    assert (made.domain, made.selector, made.rsa.key_size) == ("example.kz", "sel", 2048)
    for name in ("sel.rsa.pem", "sel.ed25519.pem", "active"):
        assert stat.S_IMODE((tmp_path / "example.kz" / name).stat().st_mode) == 0o600
    with pytest.raises(ConflictError):
        keys.keygen("example.kz", "other", with_ed25519=False)
    with pytest.raises(UsageError):
        keys.keygen("new.kz", "bad_selector", with_ed25519=False)


def test_rotation_signs_with_the_new_selector_and_keeps_the_old(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path)
    old = keys.keygen("example.kz", "old", with_ed25519=False)
    sign = signer(keys)
    data = message().replace(b"mdai.gov.kz", b"example.kz")
    assert signatures_of(sign.outgoing(data, {"example.kz"}, None, "Q1"))[0][b"s"] == b"old"
    new = keys.rotate("example.kz", "new")
    assert signatures_of(sign.outgoing(data, {"example.kz"}, None, "Q2"))[0][b"s"] == b"new"
    assert [(r.selector, r.active) for r in keys.selectors()] == [("old", False), ("new", True)]
    with pytest.raises(ConflictError):
        keys.drop("example.kz", "new")
    keys.drop("example.kz", "old")
    assert [r.selector for r in keys.selectors()] == ["new"]
    with pytest.raises(NotFoundError):
        keys.load("example.kz", "old")
    assert old.rsa.public_key().public_numbers() != new.rsa.public_key().public_numbers()


def test_rotate_without_keys_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        KeyStore(tmp_path).rotate("example.kz")


def test_rsa_record_carries_the_public_key(store: KeyStore) -> None:
    keys: KeySet | None = store.active(DOMAIN)
    assert keys is not None
    (rsa_name, rsa_txt), (ed_name, ed_txt) = dns_records(keys)
    assert rsa_name == f"s1._domainkey.{DOMAIN}" and ed_name == f"s1-ed25519._domainkey.{DOMAIN}"
    assert rsa_txt.startswith("v=DKIM1; k=rsa; p=MIIBIjAN")  # SubjectPublicKeyInfo, 2048 bits
    assert ed_txt.startswith("v=DKIM1; k=ed25519; p=") and len(ed_txt.split("p=")[1]) == 44


# -- configuration and the CLI -----------------------------------------------------------------


def test_config_defaults_and_a_bad_gateway_domain(tmp_path: Path) -> None:
    config = load_config(None, env={"UGEM_NODE_DATA_DIR": str(tmp_path)})
    assert (config.dkim.enabled, config.dkim.key_dir, config.dkim.gateway_domain) == (True, "", "")
    made = signer_from_config(config, FakeClock())
    assert made is not None and made.keys.root == tmp_path / "dkim"
    off = load_config(None, env={"UGEM_DKIM_ENABLED": "false"})
    assert signer_from_config(off, FakeClock()) is None
    bad = load_config(None, env={"UGEM_DKIM_GATEWAY_DOMAIN": "not a domain"})
    with pytest.raises(ConfigError, match=r"dkim\.gateway_domain"):
        signer_from_config(bad, FakeClock())


def test_cli_keygen_rotate_list_drop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ugem = operator(tmp_path, capsys, monkeypatch, f'[dkim]\nkey_dir = "{tmp_path / "keys"}"\n')
    out = ugem.ok("dkim", "keygen", "example.kz", "--selector", "first", "--ed25519")
    assert 'first._domainkey.example.kz. IN TXT "v=DKIM1; k=rsa; p=' in out
    assert 'first-ed25519._domainkey.example.kz. IN TXT "v=DKIM1; k=ed25519; p=' in out
    assert all(len(s) <= 255 for line in out.splitlines() for s in line.split('"')[1::2])
    assert (tmp_path / "keys" / "example.kz" / "first.rsa.pem").exists()
    assert "second._domainkey.example.kz." in ugem.ok(
        "dkim", "rotate", "example.kz", "--selector", "second"
    )
    table = ugem.ok("dkim", "list").splitlines()
    assert [line.split()[:2] for line in table[1:]] == [
        ["example.kz", "first"],
        ["example.kz", "second"],
    ]
    assert "yes" in table[2] and "rsa-sha256+ed25519-sha256" in table[2]
    refused = ugem("dkim", "drop", "example.kz", "second")
    assert refused.code == 1 and "active selector" in refused.err
    ugem.ok("dkim", "drop", "example.kz", "first")
    assert not (tmp_path / "keys" / "example.kz" / "first.rsa.pem").exists()
    again = ugem("dkim", "keygen", "example.kz")
    assert again.code == 1 and "use rotate" in again.err


def test_a_rechecking_store_sees_a_rotation_within_its_interval(tmp_path: Path) -> None:
    writer, clock = KeyStore(tmp_path), FakeClock()
    reader = KeyStore(tmp_path, clock, recheck=1.0)
    assert reader.active("late.kz") is None
    writer.keygen("late.kz", "s1", with_ed25519=False)
    assert reader.active("late.kz") is None  # the answer of a moment ago is reused
    clock.advance(1.0)
    first = reader.active("late.kz")
    assert first is not None and first.selector == "s1"
    writer.rotate("late.kz", "s2", with_ed25519=False)
    clock.advance(0.5)
    assert reader.active("late.kz") is first
    clock.advance(0.5)
    second = reader.active("late.kz")
    assert second is not None and second.selector == "s2"
