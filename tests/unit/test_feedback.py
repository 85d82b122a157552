"""ugem.core.feedback: ARF reports (RFC 5965's own examples, Yahoo's and Microsoft's styles),
DSNs, plain abuse reports; and what a stranger may send instead: missing parts, huge, deeply
nested, thousands of parts, bytes that are not UTF-8, control characters, anything at all
(hypothesis). The parser never raises, and what it keeps is bounded and clean."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.queue.message import new_queue_id
from tests.support.feedback import (
    DSN,
    RFC5965_B1,
    RFC5965_B2,
    YAHOO_STYLE,
    arf,
    crlf,
    microsoft_style,
)
from ugem.core import feedback
from ugem.core.feedback import (
    MAX_FIELDS,
    MAX_NAME,
    MAX_ORIGINAL_FIELDS,
    MAX_PARSE,
    MAX_VALUE,
    FeedbackReport,
    ReportFormat,
    parse_report,
)

ORIGINAL = crlf("From: <news@mdai.gov.kz>\nMessage-ID: <n-1@mdai.gov.kz>\nSubject: hi\n\nbody\n")


def test_rfc5965_b1_the_minimal_report() -> None:
    report = parse_report(RFC5965_B1)
    assert (report.format, report.feedback_type) == (ReportFormat.ARF, "abuse")
    assert report.reporter == "<abusedesk@example.com>"
    assert report.fields == (
        ("Feedback-Type", "abuse"), ("User-Agent", "SomeGenerator/1.0"), ("Version", "1"),
    )  # fmt: skip
    assert report.header("From") == "<somespammer@example.net>"
    assert report.header("message-id") == "8787KJKJ3K4J3K4J3K4J3.mail@example.net"
    assert report.header("Received").startswith("from mailserver.example.net (mailserver")
    assert (report.problem, report.truncated) == ("", False)


def test_rfc5965_b2_every_field() -> None:
    report = parse_report(RFC5965_B2)
    assert (report.format, report.feedback_type) == (ReportFormat.ARF, "abuse")
    assert report.value("Original-Mail-From") == "<somespammer@example.net>"
    assert report.values("Original-Rcpt-To") == ("<user@example.com>",)
    assert report.value("Arrival-Date") == "Thu, 8 Mar 2005 14:00:00 EDT"
    assert report.value("Source-IP") == "192.0.2.1"
    assert report.value("Reported-Domain") == "example.net"
    assert report.values("Reported-Uri") == (
        "http://example.net/earn_money.html", "mailto:user@example.com",
    )  # fmt: skip
    assert report.value("Authentication-Results") == (
        "mail.example.com; spf=fail smtp.mail=somespammer@example.com"
    )  # unfolded
    # The RFC's example has an empty line after the original's Received: field, so To:,
    # Subject: and the rest are its body: what a parser of the RFC's text must see.
    assert [name for name, _ in report.original] == ["From", "Received"]


def test_yahoo_style_old_version_received_date_and_a_dkim_signature() -> None:
    report = parse_report(YAHOO_STYLE)
    assert (report.format, report.feedback_type) == (ReportFormat.ARF, "abuse")
    assert report.value("User-Agent") == "Yahoo!-Mail-Feedback/2.0"
    assert report.value("Version") == "0.1"
    assert report.value("Received-Date") == "Tue, 12 Jan 2027 08:10:41 +0000"
    assert "d=agency.gov.kz;" in report.header("DKIM-Signature")
    assert report.header("Message-ID") == "<t-2027-0112@agency.gov.kz>"


def test_microsoft_style_keeps_the_gateways_received_field() -> None:
    queue_id = new_queue_id()
    report = parse_report(microsoft_style(queue_id, "127.0.0.2"))
    assert (report.format, report.value("User-Agent")) == (ReportFormat.ARF, "Hotmail FBL")
    ours = report.headers("Received")[1]
    assert ours.startswith("from mail.mdai.gov.kz ([127.0.0.2]) by gw.test (UGEM) with ESMTPS")
    assert f"id {queue_id}" in ours


def test_a_dsn_gives_its_status_fields_and_the_original_headers() -> None:
    report = parse_report(DSN)
    assert (report.format, report.feedback_type) == (ReportFormat.DSN, "delivery-status")
    assert report.value("Reporting-MTA") == "dns; mx.example.org"
    assert (report.value("Action"), report.value("Status")) == ("failed", "5.1.1")
    assert report.header("Return-Path") == "<clerk@minfin.gov.kz>"
    assert report.header("Message-ID") == "<inv-1@minfin.gov.kz>"
    assert report.problem == ""


def test_a_plain_report_with_the_original_attached() -> None:
    raw = (
        crlf(
            "From: abuse@isp.test\nSubject: spam from you\nMIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="m"\n\n'
            "--m\nContent-Type: text/plain\n\nPlease stop this.\n"
            "--m\nContent-Type: message/rfc822\n\n"
        )
        + ORIGINAL
        + b"\r\n--m--\r\n"
    )
    report = parse_report(raw)
    assert (report.format, report.feedback_type) == (ReportFormat.PLAIN, "abuse")
    assert report.reporter == "abuse@isp.test"
    assert report.header("From") == "<news@mdai.gov.kz>"
    assert report.fields == ()


def test_a_plain_report_with_the_headers_pasted_into_its_text() -> None:
    raw = crlf(
        "From: someone@isp.test\nSubject: spam\n\nHello, I got this spam:\n\n"
        "Received: from x ([127.0.0.2]) by gw.test (UGEM) with ESMTP id ABC;\n"
        " Tue, 12 Jan 2027 08:10:41 +0000\nFrom: <news@mdai.gov.kz>\nSubject: buy\n\n"
        "thanks\n"
    )
    report = parse_report(raw)
    assert report.format == ReportFormat.PLAIN
    assert [name for name, _ in report.original] == ["Received", "From", "Subject"]
    assert report.header("Received").endswith("Tue, 12 Jan 2027 08:10:41 +0000")


def test_a_report_forwarded_inside_another_message_is_found() -> None:
    raw = (
        crlf(
            "From: noc@isp.test\nMIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="fw"\n\n'
            "--fw\nContent-Type: text/plain\n\nForwarding a complaint.\n--fw\n"
        )
        + arf(ORIGINAL)
        + b"\r\n--fw--\r\n"
    )
    report = parse_report(raw)
    assert (report.format, report.reporter) == (ReportFormat.ARF, "noc@isp.test")
    assert report.header("Message-ID") == "<n-1@mdai.gov.kz>"


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abuse", "abuse"), ("Abuse", "abuse"), (" fraud ", "fraud"), ("virus", "virus"),
        ("not-spam", "not-spam"), ("auth-failure", "auth-failure"), ("other", "other"),
        ("opt-out", "other"), ("x" * 5000, "other"),
    ],
)  # fmt: skip
def test_the_feedback_type_is_one_of_a_few(sent: str, kept: str) -> None:
    assert parse_report(arf(ORIGINAL, sent)).feedback_type == kept


def test_an_arf_without_its_feedback_part_says_so_and_keeps_the_original() -> None:
    raw = (
        crlf(
            'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\n\n'
            "--b\nContent-Type: text/plain\n\nspam\n--b\nContent-Type: message/rfc822\n\n"
        )
        + ORIGINAL
        + b"\r\n--b--\r\n"
    )
    report = parse_report(raw)
    assert (report.format, report.feedback_type) == (ReportFormat.ARF, "other")
    assert report.problem == "no message/feedback-report part"
    assert report.header("From") == "<news@mdai.gov.kz>"


def test_an_arf_without_the_original_says_so() -> None:
    raw = crlf(
        'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\n\n'
        "--b\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\n\n--b--\n"
    )
    report = parse_report(raw)
    assert report.feedback_type == "abuse"
    assert report.problem == "no message/rfc822 or text/rfc822-headers part"
    assert report.original == ()


def test_a_report_of_nothing_but_text_says_it_found_no_original() -> None:
    report = parse_report(b"Subject: hello\r\n\r\nI do not like your mail.\r\n")
    assert (report.format, report.original) == (ReportFormat.PLAIN, ())
    assert report.problem == "no original message or header fields in the report"


def test_the_empty_message_and_garbage_are_reports_too() -> None:
    for raw in (b"", b"\x00\xff\xfe", b"--\r\n--\r\n", b":::\r\n\r\n"):
        report = parse_report(raw)
        assert report.format in (ReportFormat.PLAIN, ReportFormat.UNPARSED), raw


def test_base64_rfc822_headers_are_decoded() -> None:
    encoded = base64.encodebytes(ORIGINAL).decode()
    raw = crlf(
        'Content-Type: multipart/report; report-type=delivery-status; boundary="d"\n\n'
        "--d\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.test\n\n"
        "Final-Recipient: rfc822; x@y.test\nAction: failed\nStatus: 5.0.0\n\n"
        "--d\nContent-Type: text/rfc822-headers\nContent-Transfer-Encoding: base64\n\n"
        f"{encoded}\n--d--\n"
    )
    report = parse_report(raw)
    assert (report.format, report.value("Status")) == (ReportFormat.DSN, "5.0.0")
    assert report.header("Message-ID") == "<n-1@mdai.gov.kz>"


def test_bytes_that_are_not_utf8_become_replacement_characters() -> None:
    original = (
        b"From: \xff\xfe <x@mdai.gov.kz>\r\nSubject: \xd0\x9f\xd1\x80\xd0\xb8 \xc3\x28\r\n\r\n"
    )
    report = parse_report(arf(original, Original_Mail_From="<\xe9@x>"))
    assert report.header("From") == "\ufffd\ufffd <x@mdai.gov.kz>"
    assert report.header("Subject") == "При \ufffd("  # UTF-8 kept, the bad byte replaced
    _assert_clean(report)


def test_control_characters_and_folding_are_removed() -> None:
    original = b"Subject: \x1b[31mred\x1b[0m\x07\r\n\tcontinued\r\nFrom: <a@b.kz>\r\n\r\n"
    report = parse_report(arf(original))
    assert report.header("Subject") == "[31mred[0m continued"


def test_long_values_and_many_fields_are_cut() -> None:
    many = b"".join(b"X-Field-%d: %s\r\n" % (i, b"v" * 2000) for i in range(500))
    long_name = b"X-" + b"n" * 300 + b": value\r\n"
    fields = {f"X_Report_{i}": "w" * 2000 for i in range(100)}
    report = parse_report(arf(long_name + many + b"\r\nbody", **fields))
    assert len(report.original) == MAX_ORIGINAL_FIELDS
    assert len(report.fields) == MAX_FIELDS
    assert len(report.original[0][0]) == MAX_NAME
    assert {len(v) for _, v in report.original[1:]} == {MAX_VALUE}
    _assert_clean(report)


def test_a_huge_report_is_read_only_so_far() -> None:
    body = b"Spam spam spam spam spam spam spam spam spam spam spam\r\n" * 60_000  # 3.4 MB
    report = parse_report(arf(ORIGINAL.rstrip(b"\r\n") + b"\r\n" + body))
    assert report.truncated and report.format == ReportFormat.ARF
    assert report.header("Message-ID") == "<n-1@mdai.gov.kz>"


def _nested_multiparts(depth: int) -> bytes:
    head = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(depth)
    )
    tail = b"".join(b"\r\n--b%d--" % i for i in reversed(range(depth)))
    return head + b"Content-Type: text/plain\r\n\r\nx" + tail + b"\r\n"


def test_deep_nesting_is_not_parsed() -> None:
    report = parse_report(_nested_multiparts(500))
    assert report.format == ReportFormat.UNPARSED
    assert report.problem == "more than 64 multipart or message parts"
    chain = b"Content-Type: message/rfc822\r\n\r\n" * 100 + b"Subject: x\r\n\r\nhi"
    assert parse_report(chain).format == ReportFormat.UNPARSED


def test_thousands_of_parts_are_not_parsed() -> None:
    raw = b'Content-Type: multipart/mixed; boundary="p"\r\n\r\n' + b"--p\r\n\r\nx\r\n" * 5000
    report = parse_report(raw + b"--p--\r\n")
    assert (report.format, report.problem) == (
        ReportFormat.UNPARSED,
        "more than 1000 part boundaries",
    )


def test_a_parser_failure_is_a_report_not_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feedback, "MAX_CONTAINERS", 10**6)  # past the guards: the parser recurses
    monkeypatch.setattr(feedback, "MAX_BOUNDARY_LINES", 10**6)
    report = parse_report(_nested_multiparts(3000))
    assert report.format == ReportFormat.UNPARSED
    assert report.problem == "the report could not be parsed (RecursionError)"


def test_nesting_within_the_limits_is_searched_only_so_deep() -> None:
    inner = arf(ORIGINAL)
    for i in range(10):  # deeper than MAX_DEPTH: the report is not looked for down there
        inner = crlf(f'Content-Type: multipart/mixed; boundary="n{i}"\n\n--n{i}\n') + inner
        inner += b"\r\n--n%d--\r\n" % i
    report = parse_report(inner)
    assert report.format == ReportFormat.PLAIN


# -- anything at all -------------------------------------------------------------------------


def _assert_clean(report: FeedbackReport) -> None:
    assert report.format in ReportFormat
    assert len(report.fields) <= MAX_FIELDS and len(report.original) <= MAX_ORIGINAL_FIELDS
    texts = [report.reporter, report.problem, report.feedback_type]
    texts += [t for pair in report.fields + report.original for t in pair]
    for text in texts:
        text.encode("utf-8")  # no lone surrogates: storable
        assert not any(ord(c) < 32 or ord(c) == 127 for c in text), text
        assert len(text) <= MAX_VALUE


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.binary(max_size=4096))
def test_any_bytes_give_a_clean_report(raw: bytes) -> None:
    _assert_clean(parse_report(raw))


_PIECES = st.sampled_from(
    [
        b"\r\n", b"\r\n\r\n", b"--", b"--part1_13d.2e68ed54_boundary", b"Content-Type: ",
        b"multipart/report; report-type=feedback-report; boundary=", b"message/rfc822",
        b"message/feedback-report", b"text/rfc822-headers", b"message/delivery-status",
        b"Content-Transfer-Encoding: base64", b"=?utf-8?b?0J/RgA==?=", b"\xff\xc3\x28", b"\x00",
        b"Received: from x ([127.0.0.2]) by gw.test (UGEM) with ESMTP id ", b":", b";", b'"',
        b" ", b"\t",
    ]
)  # fmt: skip


@settings(max_examples=400, derandomize=True, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(RFC5965_B2)), st.integers(0, 64), st.binary(max_size=64) | _PIECES
        ),
        max_size=8,
    )
)
def test_a_mangled_rfc_example_gives_a_clean_report(edits: list[tuple[int, int, bytes]]) -> None:
    raw = RFC5965_B2
    for at, cut, insert in edits:
        raw = raw[:at] + insert + raw[at + cut :]
    _assert_clean(parse_report(raw))


_VALUES = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=200)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    st.sampled_from(["abuse", "fraud", "virus", "other", "not-spam", "auth-failure"]),
    st.dictionaries(st.from_regex(r"X_[a-z]{1,12}", fullmatch=True), _VALUES, max_size=8),
    _VALUES,
)
def test_generated_reports_keep_their_type_and_fields(
    kind: str, fields: dict[str, str], subject: str
) -> None:
    original = f"From: <a@mdai.gov.kz>\r\nSubject: {subject}\r\n\r\nbody".encode()
    report = parse_report(arf(original, kind, **fields))
    assert (report.format, report.feedback_type) == (ReportFormat.ARF, kind)
    for name, value in fields.items():
        assert report.value(name.replace("_", "-")) == feedback.clean(value)
    assert report.header("From") == "<a@mdai.gov.kz>"
    _assert_clean(report)


def test_the_limits_are_as_documented() -> None:
    assert MAX_PARSE == 1024 * 1024 and feedback.MAX_CONTAINERS == 64
