"""relay.inbound.checks: the three checks together, the policy knobs, the header, metrics and logs.

Records come from a private dnsmasq: bank.kz (SPF, p=reject, a DKIM key),
careful.kz (p=quarantine), lax.kz (p=none); the sending host is 192.0.2.10,
the only address their SPF records allow.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest

from relay import replies
from relay.accept.commands import Envelope
from relay.deliver.dkim_sign import DkimSigner
from relay.dns import AuthDns
from relay.inbound.checks import InboundAuth, inbound_from_config
from relay.inbound.spf import SpfResult
from relay.replies import Reply
from tests.support.clients import message
from tests.support.silent_dns import SilentDns
from ugem.core.clock import FakeClock, SystemClock
from ugem.core.config import AuthConfig, Config, DeliveryConfig, NodeConfig
from ugem.core.dkim_keys import KeyStore, dns_records
from ugem.core.errors import ConfigError
from ugem.core.metrics import Metrics

GOOD_HOST, BAD_HOST = "192.0.2.10", "198.51.100.66"
SPF = "v=spf1 ip4:192.0.2.10 -all"
ZONE = {
    "bank.kz": SPF,
    "_dmarc.bank.kz": "v=DMARC1; p=reject",
    "careful.kz": SPF,
    "_dmarc.careful.kz": "v=DMARC1; p=quarantine",
    "lax.kz": SPF,
    "_dmarc.lax.kz": "v=DMARC1; p=none",
}
FORGED = b"Authentication-Results: gw.test; dmarc=pass header.from=bank.kz\r\n"
OTHERS = b"Authentication-Results: mx.other.example; spf=pass\r\n"


def envelope(sender: str, host: str = GOOD_HOST, helo: str = "mx.sender.example") -> Envelope:
    return Envelope("QTEST", host, helo, sender, ("clerk@mdai.gov.kz",), tls=False)


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bank.kz's DKIM key (made once: RSA key generation is slow)."""
    root = tmp_path_factory.mktemp("keys")
    KeyStore(root).keygen("bank.kz", "s1", with_ed25519=False)
    return root


@pytest.fixture
async def dns(dns_server: Any, keys_dir: Path) -> AuthDns:
    made = KeyStore(keys_dir).active("bank.kz")
    assert made is not None
    server = await dns_server(txt={**ZONE, **dict(dns_records(made))})
    return AuthDns(DeliveryConfig(dns_servers=[server.address], dns_timeout=2.0))


def checks(dns: AuthDns, metrics: Metrics | None = None, **knobs: Any) -> InboundAuth:
    config = dataclasses.replace(AuthConfig(), **knobs)
    return InboundAuth(config, "gw.test", dns, FakeClock(), metrics or Metrics(), lambda: 0.0)


def dkim_signed(keys_dir: Path, text: bytes) -> bytes:
    signer = DkimSigner(KeyStore(keys_dir), "", SystemClock())
    return signer.sign(text, ["bank.kz"], "bank.kz") + text


def header_of(out: bytes | Reply) -> bytes:
    assert isinstance(out, bytes), out
    return out.split(b"\r\n\r\n", 1)[0]


async def test_aligned_spf_pass_is_tagged_and_forged_results_are_stripped(dns: AuthDns) -> None:
    text = FORGED + OTHERS + message("boss@bank.kz", "clerk@mdai.gov.kz")
    out = await checks(dns).check(text, envelope("bounce@bank.kz"))
    assert isinstance(out, bytes)
    assert out.startswith(
        b"Authentication-Results: gw.test;\r\n"
        b"\tspf=pass smtp.mailfrom=bounce@bank.kz;\r\n"
        b"\tdkim=none;\r\n"
        b"\tdmarc=pass (p=reject dis=none) header.from=bank.kz\r\n"
    )
    assert FORGED not in out and OTHERS in out
    assert out.endswith(message("boss@bank.kz", "clerk@mdai.gov.kz"))


async def test_aligned_dkim_passes_dmarc_for_forwarded_mail_even_with_spf_reject(
    dns: AuthDns, keys_dir: Path
) -> None:
    text = dkim_signed(keys_dir, message("boss@bank.kz", "clerk@mdai.gov.kz"))
    out = await checks(dns, spf_fail="reject").check(text, envelope("boss@bank.kz", BAD_HOST))
    head = header_of(out)
    assert b"spf=fail" in head
    assert b"dkim=pass header.d=bank.kz header.s=s1" in head
    assert b"dmarc=pass" in head


async def test_p_reject_failure_per_knob(dns: AuthDns) -> None:
    text = message("boss@bank.kz", "clerk@mdai.gov.kz")
    env = envelope("boss@bank.kz", BAD_HOST)
    assert await checks(dns).check(text, env) == replies.DMARC_REJECT
    marked = header_of(await checks(dns, dmarc_reject="quarantine-tag").check(text, env))
    assert b"dmarc=fail (p=reject dis=reject)" in marked
    assert b"\r\nX-UGEM-Quarantine: dmarc\r\n" in marked + b"\r\n"
    tagged = header_of(await checks(dns, dmarc_reject="tag").check(text, env))
    assert b"dmarc=fail" in tagged and b"X-UGEM-Quarantine" not in tagged


async def test_p_quarantine_failure_is_marked_and_p_none_only_tagged(dns: AuthDns) -> None:
    careful = message("boss@careful.kz", "clerk@mdai.gov.kz")
    out = header_of(await checks(dns).check(careful, envelope("boss@careful.kz", BAD_HOST)))
    assert b"dmarc=fail (p=quarantine dis=quarantine)" in out
    assert b"X-UGEM-Quarantine: dmarc" in out
    lax = message("boss@lax.kz", "clerk@mdai.gov.kz")
    out = header_of(await checks(dns).check(lax, envelope("boss@lax.kz", BAD_HOST)))
    assert b"dmarc=fail (p=none dis=none) header.from=lax.kz" in out
    assert b"X-UGEM-Quarantine" not in out


async def test_spf_fail_is_refused_only_when_configured(dns: AuthDns) -> None:
    text = message("someone@elsewhere.example", "clerk@mdai.gov.kz")  # no DMARC record
    env = envelope("bounce@lax.kz", BAD_HOST)
    assert await checks(dns, spf_fail="reject").check(text, env) == replies.SPF_REJECT
    out = header_of(await checks(dns).check(text, env))
    assert b"spf=fail smtp.mailfrom=bounce@lax.kz" in out
    assert b"dmarc=none" in out


async def test_several_authors_are_refused_under_reject_and_tagged_otherwise(
    dns: AuthDns,
) -> None:
    text = b"From: boss@bank.kz\r\n" + message("a@evil.example", "clerk@mdai.gov.kz")
    env = envelope("a@evil.example", BAD_HOST)
    assert await checks(dns).check(text, env) == replies.SEVERAL_AUTHORS
    out = header_of(await checks(dns, dmarc_reject="tag").check(text, env))
    assert b"dmarc=permerror" in out


async def test_mail_without_from_is_delivered_with_dmarc_none(dns: AuthDns) -> None:
    out = await checks(dns).check(b"Subject: x\r\n\r\nHello.\r\n", envelope("a@bank.kz"))
    assert b'dmarc=none reason="no author domain in From:"' in header_of(out)


async def test_no_dns_is_temperror_never_a_refusal(silent_dns: SilentDns) -> None:
    dns = AuthDns(DeliveryConfig(dns_servers=[silent_dns.address], dns_timeout=0.3))
    text = message("boss@bank.kz", "clerk@mdai.gov.kz")
    out = header_of(await checks(dns, spf_fail="reject").check(text, envelope("b@bank.kz")))
    assert b"spf=temperror" in out and b"dmarc=temperror" in out


async def test_the_results_are_counted(dns: AuthDns) -> None:
    metrics = Metrics()
    text = message("boss@lax.kz", "clerk@mdai.gov.kz")
    await checks(dns, metrics).check(text, envelope("boss@lax.kz", BAD_HOST))
    rendered = metrics.render().decode()
    for method, result in (("spf", "fail"), ("dkim", "none"), ("dmarc", "fail")):
        line = f'ugem_auth_results_total{{method="{method}",result="{result}"}} 1.0'
        assert line in rendered


async def test_a_failing_check_is_451_and_logged_with_the_queue_id(
    dns: AuthDns, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    auth = checks(dns)

    async def broken(*args: Any) -> SpfResult:
        raise RuntimeError("bug")

    monkeypatch.setattr(auth.spf, "check", broken)
    with caplog.at_level(logging.ERROR, logger="relay.inbound.checks"):
        out = await auth.check(message("a@bank.kz", "b@mdai.gov.kz"), envelope("a@bank.kz"))
    assert out == replies.INTERNAL_ERROR
    failed = [r.__dict__["fields"] for r in caplog.records if r.getMessage() == "auth_check_failed"]
    assert failed == [{"queue_id": "QTEST"}]


async def test_a_refusal_is_logged_at_info_and_a_pass_at_debug(
    dns: AuthDns, caplog: pytest.LogCaptureFixture
) -> None:
    text = message("boss@bank.kz", "clerk@mdai.gov.kz")
    with caplog.at_level(logging.DEBUG, logger="relay.inbound.checks"):
        await checks(dns).check(text, envelope("boss@bank.kz", BAD_HOST))
        await checks(dns).check(text, envelope("boss@bank.kz"))
    got = [(r.levelno, r.getMessage(), r.__dict__["fields"]) for r in caplog.records]
    assert [(level, name) for level, name, _ in got] == [
        (logging.INFO, "auth_refused"),
        (logging.DEBUG, "auth_checked"),
    ]
    assert got[0][2]["reply"] == str(replies.DMARC_REJECT)
    assert all(fields["queue_id"] == "QTEST" for _, _, fields in got)


def test_from_config_none_when_disabled_and_id_checked() -> None:
    node = NodeConfig(hostname="gw.test")
    off = Config(node=node, auth=AuthConfig(enabled=False))
    assert inbound_from_config(off, FakeClock(), Metrics()) is None
    on = inbound_from_config(Config(node=node), FakeClock(), Metrics())
    assert isinstance(on, InboundAuth) and on.authserv_id == "gw.test"
    bad = Config(node=node, auth=AuthConfig(authserv_id="gw test;"))
    with pytest.raises(ConfigError, match=r"auth\.authserv_id"):
        inbound_from_config(bad, FakeClock(), Metrics())


async def test_a_from_field_too_nested_to_read_is_refused_as_not_one_author(
    dns: AuthDns,
) -> None:
    """Issue 10: 20,000 nested comments made the stdlib's parser raise RecursionError (451)."""
    text = b"From: " + b"(" * 20_000 + b"boss@bank.kz\r\nTo: clerk@mdai.gov.kz\r\n\r\nHi.\r\n"
    out = await checks(dns).check(text, envelope("boss@bank.kz", BAD_HOST))
    assert out == replies.SEVERAL_AUTHORS


async def test_a_header_folded_over_many_lines_is_checked_off_the_loop(
    dns: AuthDns, keys_dir: Path
) -> None:
    """Issue 10, finding 1: a 2 MB folded header held the event loop for 33 s."""
    folded = b"X-Folded: start\r\n" + b" more\r\n" * 300_000
    signed = dkim_signed(keys_dir, message("boss@bank.kz", "clerk@mdai.gov.kz"))
    text = FORGED + folded + signed
    loop = asyncio.get_running_loop()
    gaps: list[float] = []

    async def ticker() -> None:
        last = loop.time()
        while True:
            await asyncio.sleep(0.01)
            gaps.append(loop.time() - last)
            last = loop.time()

    ticking = asyncio.create_task(ticker())
    try:
        out = await checks(dns).check(text, envelope("boss@bank.kz"))
    finally:
        ticking.cancel()
    head = header_of(out)
    assert b"dkim=pass header.d=bank.kz" in head and b"dmarc=pass" in head
    assert isinstance(out, bytes) and FORGED not in out and folded in out
    assert max(gaps, default=0.0) < 0.5, f"the loop stalled {max(gaps):.2f} s"
