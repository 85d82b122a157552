"""Inbound STARTTLS over loopback: TLS >= 1.2, handshake failures, the Received: clause, reload.

The listener runs alone (`tests.support.smtp_harness.accept_server`); clients
are smtplib (in a thread) and the raw asyncio client. Reloading calls
`AcceptServer.reload_tls()`, the method SIGHUP runs (the signal itself is
tested on a real process in tests/integration/test_tls_sighup_reload.py).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import socket
import ssl
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from relay import replies
from relay.accept.listener import load_tls
from tests.support.connections import plain
from tests.support.smtp_harness import Harness, accept_server, raw_client
from tests.support.tls_cert import (
    client_context,
    der_fingerprint,
    fingerprint,
    self_signed,
    starttls_fingerprint,
)
from tests.support.waiting import eventually

CONN = plain("minfin.gov.kz", "127.0.0.2")
BODY = b"Subject: tls\r\n\r\nHello.\r\n"


def keys_in(directory: Path, name: str = "gw.test") -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return self_signed(directory, name)


def tls_smtp(cert: Path, key: Path, **smtp: Any) -> dict[str, Any]:
    return {"tls_cert": str(cert), "tls_key": str(key), **smtp}


def failures(h: Harness, reason: str) -> float:
    value = h.metrics.registry.get_sample_value(
        "ugem_smtp_tls_handshake_failures_total", {"reason": reason}
    )
    return value or 0.0


def starttls_session(port: int, context: ssl.SSLContext) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", port, timeout=10)
    client.ehlo("client.test")
    client.starttls(context=context)
    return client


def peer_fingerprint(port: int) -> str:
    return starttls_fingerprint("127.0.0.1", port)


def tls_events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == name]


# -- the server's context ------------------------------------------------------------------


def test_the_server_context_needs_tls_1_2_and_refuses_renegotiation(tmp_path: Path) -> None:
    context = load_tls(*map(str, self_signed(tmp_path)))
    assert context is not None
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_RENEGOTIATION


async def test_smtplib_starttls_is_served_and_received_names_version_and_cipher(
    tmp_path: Path,
) -> None:
    async with accept_server(tmp_path, conns=[CONN], **tls_smtp(*keys_in(tmp_path))) as h:

        def send() -> tuple[str, str]:
            with starttls_session(h.port, client_context()) as client:
                client.ehlo("client.test")
                client.sendmail("a@ext.org", ["clerk@minfin.gov.kz"], BODY)
                sock = client.sock
                assert isinstance(sock, ssl.SSLSocket)
                cipher = sock.cipher()
                assert cipher is not None
                return str(sock.version()), cipher[0]

        version, cipher = await asyncio.to_thread(send)
    head = (h.intake.messages[0].data or b"").split(b"\r\n")
    assert head[0] == b"Received: from client.test ([127.0.0.1])"
    assert head[1].startswith(f"\t(using {version} with cipher {cipher} (".encode())
    assert b" with ESMTPS id " in head[2]


# -- failed handshakes ----------------------------------------------------------------------


def tls11_only() -> ssl.SSLContext:
    """A client context that offers nothing newer than TLS 1.1 (OpenSSL's level 0)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1/TLSv1_1 are deprecated
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def speaks_tls11(client: ssl.SSLContext, cert: Path, key: Path) -> bool:
    """Whether this OpenSSL lets `client` hand-shake TLS 1.1 with a server that allows it."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            server.minimum_version = ssl.TLSVersion.TLSv1
        server.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        return False
    with socket.create_server(("127.0.0.1", 0)) as listener:
        outcome: list[str | None] = []

        def serve() -> None:
            conn, _ = listener.accept()
            try:
                with server.wrap_socket(conn, server_side=True) as tls:
                    outcome.append(tls.version())
            except (OSError, ssl.SSLError):
                conn.close()

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with (
                socket.create_connection(listener.getsockname(), timeout=5) as raw,
                client.wrap_socket(raw) as tls,
            ):
                version = tls.version()
        except (OSError, ssl.SSLError):
            version = None
        thread.join(5)
    return version == "TLSv1.1"


async def test_a_client_offering_only_tls_1_1_is_refused_at_the_handshake(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = keys_in(tmp_path)
    old = tls11_only()
    if not await asyncio.to_thread(speaks_tls11, old, cert, key):
        pytest.skip("this OpenSSL cannot make a TLS 1.1 client, even at security level 0")
    caplog.set_level(logging.INFO, logger="relay.accept")
    async with accept_server(tmp_path, conns=[CONN], **tls_smtp(cert, key)) as h:
        with pytest.raises(ssl.SSLError):  # asyncio drops the alert: the client sees EOF
            await asyncio.to_thread(starttls_session, h.port, old)
        await eventually(lambda: failures(h, "tls_error") == 1, 5, "the failure counted")
        assert await asyncio.to_thread(peer_fingerprint, h.port) == fingerprint(cert)
    (logged,) = tls_events(caplog, "tls_handshake_failed")
    assert logged.levelno == logging.INFO
    fields = getattr(logged, "fields", {})
    assert fields["client_ip"] == "127.0.0.1" and fields["reason"] == "tls_error"
    assert "UNSUPPORTED_PROTOCOL" in fields["error"]  # refused for its version


async def test_a_client_stalling_in_the_handshake_is_cut_after_the_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="relay.accept")
    keys = tls_smtp(*keys_in(tmp_path), tls_handshake_timeout=0.5)
    async with accept_server(tmp_path, **keys) as h:
        async with raw_client(h.port) as stalled:
            await stalled.session()
            assert (await stalled.command(b"STARTTLS\r\n")).line == str(replies.READY_TLS)
            started = time.monotonic()
            assert await stalled.closed(timeout=5)
            waited = time.monotonic() - started
        assert 0.4 <= waited < 3.0
        assert failures(h, "timeout") == 1
        async with raw_client(h.port) as next_client:  # the listener goes on serving
            assert (await next_client.session()).code == 250
    (logged,) = tls_events(caplog, "tls_handshake_failed")
    assert getattr(logged, "fields", {})["reason"] == "timeout"


async def test_bytes_that_are_not_tls_end_the_session_only(tmp_path: Path) -> None:
    async with accept_server(tmp_path, **tls_smtp(*keys_in(tmp_path))) as h:
        async with raw_client(h.port) as client:
            await client.session()
            assert (await client.command(b"STARTTLS\r\n")).line == str(replies.READY_TLS)
            await client.send(b"EHLO this is not a ClientHello\r\n\r\n")
            assert await client.closed()
        await eventually(lambda: h.server.session_count() == 0, 5, "the session released")
        assert failures(h, "tls_error") == 1
        async with raw_client(h.port) as next_client:
            assert (await next_client.session()).code == 250


# -- reload (SIGHUP) ------------------------------------------------------------------------


async def test_reload_serves_the_new_certificate_and_keeps_open_sessions(tmp_path: Path) -> None:
    old_cert, key = keys_in(tmp_path / "live")
    new_cert, new_key = keys_in(tmp_path / "next", "gw-renewed.test")
    async with (
        accept_server(tmp_path, conns=[CONN], **tls_smtp(old_cert, key)) as h,
        raw_client(h.port) as in_tls,
        raw_client(h.port) as in_clear,
    ):
        old_print = fingerprint(old_cert)
        assert await asyncio.to_thread(peer_fingerprint, h.port) == old_print
        await in_tls.session()
        assert (await in_tls.command(b"STARTTLS\r\n")).code == 220
        await in_tls.writer.start_tls(client_context())
        await in_clear.session()

        old_cert.write_bytes(new_cert.read_bytes())
        key.write_bytes(new_key.read_bytes())
        assert h.server.reload_tls()

        assert await asyncio.to_thread(peer_fingerprint, h.port) == fingerprint(new_cert)
        assert (await in_tls.command(b"EHLO client.test\r\n")).code == 250  # kept
        assert (await in_clear.command(b"STARTTLS\r\n")).code == 220
        await in_clear.writer.start_tls(client_context())
        shown = in_clear.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert der_fingerprint(shown) == fingerprint(new_cert)
        assert (await in_clear.command(b"EHLO client.test\r\n")).code == 250
    assert h.metrics.registry.get_sample_value("ugem_tls_reloads_total", {"result": "ok"}) == 1


def garbage(cert: Path, key: Path, other_key: Path) -> None:
    cert.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")


def mismatched(cert: Path, key: Path, other_key: Path) -> None:
    key.write_bytes(other_key.read_bytes())


def missing(cert: Path, key: Path, other_key: Path) -> None:
    cert.unlink()


@pytest.mark.parametrize("spoil", [garbage, mismatched, missing])
async def test_a_bad_new_certificate_keeps_the_old_one_and_logs_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, spoil: Any
) -> None:
    cert, key = keys_in(tmp_path / "live")
    _, other_key = keys_in(tmp_path / "other")
    served = fingerprint(cert)
    async with accept_server(tmp_path, **tls_smtp(cert, key)) as h:
        spoil(cert, key, other_key)
        assert not h.server.reload_tls()
        assert await asyncio.to_thread(peer_fingerprint, h.port) == served
        failed = h.metrics.registry.get_sample_value("ugem_tls_reloads_total", {"result": "failed"})
        assert failed == 1
    (logged,) = tls_events(caplog, "tls_reload_failed")
    assert logged.levelno == logging.ERROR
    assert getattr(logged, "fields", {})["key"] == "smtp.tls_cert"


async def test_reload_without_starttls_configured_changes_nothing(tmp_path: Path) -> None:
    async with accept_server(tmp_path) as h, raw_client(h.port) as client:
        assert not h.server.reload_tls()
        assert "250-STARTTLS" not in (await client.session()).lines
