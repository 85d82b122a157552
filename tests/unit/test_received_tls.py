"""relay.accept.received with TLS: Postfix's `(using ... with cipher ...)` clause, sanitised."""

from __future__ import annotations

from relay.accept.received import received_header
from relay.tls import TlsInfo

TLS13 = TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", 256, 256)


def header(tls: TlsInfo | None) -> str:
    return received_header(
        helo="mail.ext.org",
        client_ip="192.0.2.7",
        hostname="gw.test",
        with_="ESMTPS" if tls else "ESMTP",
        queue_id="Q123",
        rcpts=["clerk@minfin.gov.kz"],
        when=1_767_225_600.0,
        tls=tls,
    ).decode("ascii")


def test_a_tls_session_adds_the_using_clause_on_its_own_line() -> None:
    lines = header(TLS13).split("\r\n")
    assert lines[0] == "Received: from mail.ext.org ([192.0.2.7])"
    assert lines[1] == "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))"
    assert lines[2] == "\tby gw.test (UGEM) with ESMTPS id Q123"
    assert all(len(line) <= 78 for line in lines)


def test_a_clear_session_has_no_using_clause() -> None:
    text = header(None)
    assert "using" not in text and "cipher" not in text
    assert text.split("\r\n")[1].startswith("\tby gw.test")


def test_tls_names_are_cut_to_a_safe_charset_and_length() -> None:
    hostile = TlsInfo("TLSv1.3)\r\nX-Injected: yes", "A" * 500 + "(;", -5, 10**9)
    lines = header(hostile).split("\r\n")
    clause = lines[1]
    assert not any(line.startswith("X-Injected") for line in lines)
    assert clause == f"\t(using TLSv1.3X-Injectedyes with cipher {'A' * 64} (0/65536 bits))"


def test_empty_names_read_unknown() -> None:
    assert "(using unknown with cipher unknown (0/0 bits))" in header(TlsInfo("", "", 0, 0))
