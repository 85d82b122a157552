"""The DSN of relay/queue/bounce.py: an RFC 3464 report that any mail reader can parse."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage, Message

import pytest

from relay.deliver.trouble import RcptOutcome
from relay.queue.bounce import MAX_LINE, SUBJECT, diagnostic, make_dsn
from relay.queue.message import QueuedMessage

NOW = 1_767_225_600.0
BODY_MARK = b"SECRET-BODY-LINE-must-not-be-returned"


def original(sender: str = "alice@gov.kz", extra_headers: bytes = b"") -> QueuedMessage:
    data = (
        b"Received: from mx.gov.kz by gw.test with ESMTP id Q1\r\n"
        b"From: Alice <alice@gov.kz>\r\n"
        b"To: bob@example.org, carol@example.net\r\n"
        b"Subject: quarterly report\r\n"
        b"Message-ID: <m1@gov.kz>\r\n"
        + extra_headers
        + b"\r\n"
        + BODY_MARK
        + b"\r\nsecond line\r\n"
    )
    return QueuedMessage(
        id="ORIG0000001",
        sender=sender,
        rcpts=["bob@example.org", "carol@example.net"],
        data=data,
        size=len(data),
        connection="gov.kz",
        client_ip="10.0.0.5",
        received_at=NOW - 3600,
    )


FAILED = [
    RcptOutcome("bob@example.org", "bounced", 550, "5.1.1", "User unknown", "mx.example.org:25"),
    RcptOutcome(
        "carol@example.net",
        "bounced",
        451,
        "4.4.7",
        "delivery time expired\r\ninjected: header",
        "",
    ),
]


def parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def parts(data: bytes) -> list[EmailMessage]:
    return list(parse(data).iter_parts())  # type: ignore[arg-type]


def status_groups(report: Message) -> list[Message]:
    """The per-message then per-recipient field groups of a message/delivery-status part."""
    groups = report.get_payload()
    assert isinstance(groups, list)
    return [g for g in groups if isinstance(g, Message)]


def test_dsn_is_a_multipart_report_with_three_parts() -> None:
    dsn = make_dsn(original(), FAILED, "gw.test", NOW)
    assert dsn is not None and dsn.data is not None
    msg = parse(dsn.data)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]


def test_dsn_envelope_and_headers() -> None:
    dsn = make_dsn(original(), FAILED, "gw.test", NOW)
    assert dsn is not None and dsn.data is not None
    assert (dsn.sender, dsn.rcpts, dsn.connection, dsn.client_ip) == ("", ["alice@gov.kz"], "", "")
    assert dsn.size == len(dsn.data) and dsn.received_at == NOW and dsn.id != "ORIG0000001"
    msg = parse(dsn.data)
    assert msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@gw.test"
    assert b"\r\nFrom: MAILER-DAEMON@gw.test (Mail Delivery System)\r\n" in b"\r\n" + dsn.data
    assert msg["To"].addresses[0].addr_spec == "alice@gov.kz"
    assert msg["Subject"] == SUBJECT
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Date"].datetime.timestamp() == NOW
    assert re.fullmatch(r"<[^<>@\s]+@gw\.test>", msg["Message-ID"])


def test_delivery_status_fields() -> None:
    dsn = make_dsn(original(), FAILED, "gw.test", NOW)
    assert dsn is not None and dsn.data is not None
    report = parts(dsn.data)[1]
    per_msg, bob, carol = status_groups(report)
    assert per_msg["Reporting-MTA"] == "dns; gw.test"
    assert per_msg["X-UGEM-Queue-ID"] == "ORIG0000001"
    assert per_msg["Arrival-Date"]
    assert bob["Final-Recipient"] == "rfc822; bob@example.org"
    assert bob["Action"] == "failed"
    assert bob["Status"] == "5.1.1"
    assert bob["Remote-MTA"] == "dns; mx.example.org"
    assert bob["Diagnostic-Code"] == "smtp; 550 5.1.1 User unknown"
    assert carol["Status"] == "4.4.7"
    assert carol["Remote-MTA"] is None  # unknown: not reported
    assert carol["Diagnostic-Code"] == "smtp; 451 4.4.7 delivery time expired injected: header"
    assert carol["injected"] is None


def test_human_part_names_each_failed_recipient_and_why() -> None:
    dsn = make_dsn(original(), FAILED, "gw.test", NOW)
    assert dsn is not None and dsn.data is not None
    text = parts(dsn.data)[0].get_content()
    assert "<bob@example.org>: host mx.example.org:25 said: 550 5.1.1 User unknown" in text
    assert "<carol@example.net>:" in text and "delivery time expired" in text


def test_original_headers_returned_but_not_the_body() -> None:
    dsn = make_dsn(original(), FAILED, "gw.test", NOW)
    assert dsn is not None and dsn.data is not None
    headers_part = parts(dsn.data)[2]
    returned = headers_part.get_payload(decode=True)
    assert isinstance(returned, bytes)
    assert b"Subject: quarterly report" in returned and b"Message-ID: <m1@gov.kz>" in returned
    assert BODY_MARK not in dsn.data and b"second line" not in dsn.data


def test_no_dsn_for_the_null_sender() -> None:
    assert make_dsn(original(sender=""), FAILED, "gw.test", NOW) is None


def test_no_dsn_without_failures() -> None:
    assert make_dsn(original(), [], "gw.test", NOW) is None


@pytest.mark.parametrize("long_header", [b"X-Long: " + b"a" * 5000 + b"\r\n", b""])
def test_crlf_only_and_lines_within_998_octets(long_header: bytes) -> None:
    noisy = RcptOutcome(
        "bob@example.org",
        "bounced",
        550,
        "5.7.1",
        "bad\rbare CR\nbare LF\x00nul " + "x" * 3000,
        "[2001:db8::1]:25",
    )
    dsn = make_dsn(original(extra_headers=long_header), [noisy], "gw.test", NOW)
    assert dsn is not None and dsn.data is not None
    data = dsn.data
    assert data.endswith(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")
    assert b"\x00" not in data
    assert max(len(line) for line in data.split(b"\r\n")) <= MAX_LINE
    report = parts(data)[1]
    assert status_groups(report)[1]["Remote-MTA"] == "dns; 2001:db8::1"
    assert (b"X-Long: aaa" in data) == bool(long_header)


def test_boundary_never_occurs_in_the_content() -> None:
    dsn = make_dsn(original(), FAILED, "gw.test", NOW)
    assert dsn is not None and dsn.data is not None
    boundary = parse(dsn.data).get_boundary()
    assert boundary is not None
    assert dsn.data.count(b"--" + boundary.encode()) == 4  # 3 parts + closing


def test_diagnostic_without_an_smtp_reply_is_not_typed_smtp() -> None:
    refused = RcptOutcome("bob@example.org", "bounced", 0, "5.4.4", "no route to host", "")
    assert diagnostic(refused) == "X-UGEM; no route to host"
