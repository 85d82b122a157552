"""relay.inbound.authres: the Authentication-Results: field we write; forged ones removed."""

from __future__ import annotations

import pytest

from relay.header_block import Header, field_value, fields, split_message
from relay.inbound.authres import ResInfo, authserv_id_of, result_field, safe_value, strip_ours

INFOS = [
    ResInfo("spf", "pass", [("smtp.mailfrom", "bounce@b.example")]),
    ResInfo("dkim", "pass", [("header.d", "b.example"), ("header.s", "sel")]),
    ResInfo("dmarc", "pass", [("header.from", "b.example")], comment="p=reject dis=none"),
]


def test_the_field_has_one_result_per_line() -> None:
    assert result_field("gw.test", INFOS) == (
        b"Authentication-Results: gw.test;\r\n"
        b"\tspf=pass smtp.mailfrom=bounce@b.example;\r\n"
        b"\tdkim=pass header.d=b.example header.s=sel;\r\n"
        b"\tdmarc=pass (p=reject dis=none) header.from=b.example\r\n"
    )


def test_no_results_is_none() -> None:
    assert result_field("gw.test", []) == b"Authentication-Results: gw.test; none\r\n"


def test_a_reason_is_a_quoted_string() -> None:
    field = result_field("gw.test", [ResInfo("dkim", "fail", reason='body "hash" mismatch')])
    assert b'dkim=fail reason="body \\"hash\\" mismatch"' in field


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("a.b-c@example.org", "a.b-c@example.org"),
        ("sel-2024", "sel-2024"),
        ("two words", '"two words"'),
        ("semi;colon@x.example", '"semi;colon@x.example"'),
        ('q"uo\\te', '"q\\"uo\\\\te"'),
        ("тест@пример.kz", '"????@??????.kz"'),
        ("", '""'),
    ],
)
def test_values_are_made_ascii_safe(raw: str, safe: str) -> None:
    assert safe_value(raw) == safe


def test_values_from_outside_cannot_add_header_lines() -> None:
    sneaky = "x\r\nX-Injected: yes\r\n@evil.example"
    field = result_field("gw.test", [ResInfo("spf", "fail", [("smtp.mailfrom", sneaky)])])
    assert field.isascii()
    assert not any(line.startswith(b"X-Injected") for line in field.split(b"\r\n"))
    assert field.count(b"\r\n") == 2  # the header line and the spf line


def test_long_results_are_folded_between_words_under_78_octets() -> None:
    props = [("header.d", f"domain{i}.example") for i in range(8)]
    field = result_field("gw.test", [ResInfo("dkim", "pass", props)])
    lines = field.rstrip(b"\r\n").split(b"\r\n")
    assert len(lines) > 2
    assert all(len(line) <= 78 for line in lines)
    assert all(line[:1] == b"\t" for line in lines[1:])
    unfolded = field.replace(b"\r\n", b"")
    assert all(f"header.d=domain{i}.example".encode() in unfolded for i in range(8))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b" gw.test; spf=pass", "gw.test"),
        (b"gw.test 1; none", "gw.test"),
        (b" (forged) (nested (comment\\)) ) GW.TEST;", "GW.TEST"),
        (b' "gw.test"; dkim=pass', "gw.test"),
        (b"   ", None),
        (b" (unterminated", None),
    ],
)
def test_authserv_id_is_read_past_comments_and_whitespace(
    value: bytes, expected: str | None
) -> None:
    assert authserv_id_of(value) == expected


BODY = b"\r\nAuthentication-Results: gw.test; spf=pass\r\nThe body is left alone.\r\n"
INCOMING = (
    b"Received: from mx.other.example\r\n"
    b"Authentication-Results: gw.test; dmarc=pass header.from=bank.kz\r\n"
    b"Authentication-Results: mx.other.example;\r\n\tspf=fail smtp.mailfrom=a@b.example\r\n"
    b"authentication-results : (say) GW.Test;\r\n dkim=pass header.d=bank.kz\r\n"
    b'Authentication-Results: "gw.test"; spf=pass\r\n'
    b"ARC-Authentication-Results: i=1; gw.test; spf=pass\r\n"
    b"Authentication-Results: gw.test.evil.example; spf=pass\r\n"
    b"From: boss@bank.kz\r\n" + BODY
)


def test_strip_ours_removes_our_id_only_and_keeps_the_body() -> None:
    out = strip_ours(Header.parse(INCOMING), "gw.test")
    head, rest = split_message(out)
    assert rest == BODY
    assert fields(head) == [
        b"Received: from mx.other.example\r\n",
        b"Authentication-Results: mx.other.example;\r\n\tspf=fail smtp.mailfrom=a@b.example\r\n",
        b"ARC-Authentication-Results: i=1; gw.test; spf=pass\r\n",
        b"Authentication-Results: gw.test.evil.example; spf=pass\r\n",
        b"From: boss@bank.kz\r\n",
    ]


def test_strip_ours_leaves_a_message_without_forgeries_unchanged() -> None:
    text = b"From: a@b.example\r\nSubject: hi\r\n\r\nbody\r\n"
    assert strip_ours(Header.parse(text), "gw.test") == text
    assert strip_ours(Header.parse(b"From: a@b.example\r\n"), "gw.test") == b"From: a@b.example\r\n"


def test_header_block_round_trips() -> None:
    head, rest = split_message(INCOMING)
    assert b"".join(fields(head)) + rest == INCOMING
    assert field_value(b"Subject: a\r\n b\r\n") == b" a b"
