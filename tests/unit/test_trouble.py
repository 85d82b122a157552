"""The failure policy as tables: replies and exceptions in, recipient outcomes out."""

from __future__ import annotations

import ssl

import aiosmtplib
import dns.exception
import dns.resolver
import pytest

from relay.deliver import trouble
from relay.deliver.trouble import RcptOutcome
from ugem.core.errors import RouteFailure

HOP = "192.0.2.1:25"
RCPT = "bob@example.org"

REPLIES = [
    # code, reply text as aiosmtplib gives it -> kind, status, text
    (250, "2.0.0 Ok: queued as ABC", "delivered", "2.0.0", "Ok: queued as ABC"),
    (250, "OK", "delivered", "2.0.0", "OK"),
    (251, "2.1.5 will forward", "delivered", "2.1.5", "will forward"),
    (450, "4.2.0 mailbox busy", "deferred", "4.2.0", "mailbox busy"),
    (451, "try later", "deferred", "4.0.0", "try later"),
    (421, "4.3.2 shutting down", "deferred", "4.3.2", "shutting down"),
    (452, "4.5.3 Too many recipients", "deferred", "4.5.3", "Too many recipients"),
    (550, "5.1.1 No such user", "bounced", "5.1.1", "No such user"),
    (554, "Transaction failed", "bounced", "5.0.0", "Transaction failed"),
    (552, "5.3.4 too big", "bounced", "5.3.4", "too big"),
    # multi-line: the repeated status of every line is dropped, lines joined
    (
        550,
        "5.7.1 Rejected\n5.7.1 see https://x.test",
        "bounced",
        "5.7.1",
        "Rejected see https://x.test",
    ),
    # a status whose class disagrees with the code is text, not a status
    (550, "4.2.2 full", "bounced", "5.0.0", "4.2.2 full"),
    # three-digit detail parts are allowed (RFC 3463), "5.1" alone is not a status
    (550, "5.7.509 Access denied", "bounced", "5.7.509", "Access denied"),
    (550, "5.1 odd", "bounced", "5.0.0", "5.1 odd"),
]


@pytest.mark.parametrize(("code", "message", "kind", "status", "text"), REPLIES)
def test_reply_outcomes(
    code: int, message: str, kind: trouble.Kind, status: str, text: str
) -> None:
    expected = RcptOutcome(RCPT, kind, code, status, text, HOP)
    assert trouble.from_reply(RCPT, code, message, HOP) == expected


@pytest.mark.parametrize("code", [-1, 0, 100, 199, 354, 600])
def test_a_malformed_or_unexpected_code_is_deferred(code: int) -> None:
    outcome = trouble.from_reply(RCPT, code, "weird", HOP)
    assert (outcome.kind, outcome.code, outcome.status) == ("deferred", 451, "4.5.0")
    assert str(code) in outcome.text


EXCEPTIONS = [
    (aiosmtplib.SMTPConnectTimeoutError("Timed out connecting"), "4.4.1", "timed out connecting"),
    (
        aiosmtplib.SMTPConnectError("Error connecting: [Errno 111] refused"),
        "4.4.1",
        "cannot connect",
    ),
    (ConnectionRefusedError(111, "Connection refused"), "4.4.1", "cannot connect"),
    (
        aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response"),
        "4.4.2",
        "timed out waiting",
    ),
    (TimeoutError(), "4.4.2", "timed out waiting"),
    (aiosmtplib.SMTPServerDisconnected("Connection lost"), "4.4.2", "lost connection"),
    (ConnectionResetError(104, "reset by peer"), "4.4.2", "lost connection"),
    (ssl.SSLError(1, "handshake failure"), "4.7.5", "TLS handshake"),
    (dns.resolver.LifetimeTimeout(timeout=1.0, errors=[]), "4.4.3", "DNS"),  # type: ignore[no-untyped-call]
    (dns.resolver.NoNameservers(), "4.4.3", "DNS"),  # type: ignore[no-untyped-call]
    (OSError(113, "No route to host"), "4.4.2", "network error"),
    (RuntimeError("a bug"), "4.3.0", "internal error"),
]


@pytest.mark.parametrize(("exc", "status", "words"), EXCEPTIONS)
def test_exceptions_defer(exc: BaseException, status: str, words: str) -> None:
    outcome = trouble.from_exception(RCPT, exc, HOP)
    assert (outcome.kind, outcome.code, outcome.status, outcome.hop) == (
        "deferred",
        451,
        status,
        HOP,
    )
    assert words in outcome.text


@pytest.mark.parametrize(
    "exc",
    [
        aiosmtplib.SMTPConnectResponseError(554, "5.7.1 go away"),
        aiosmtplib.SMTPHeloError(550, "5.7.1 not you"),
        aiosmtplib.SMTPHeloError(421, "4.3.2 busy"),
    ],
)
def test_a_refused_greeting_or_ehlo_is_deferred_even_when_5xx(exc: Exception) -> None:
    outcome = trouble.from_exception(RCPT, exc, HOP)
    assert (outcome.kind, outcome.code, outcome.status) == ("deferred", 451, "4.4.0")
    assert HOP in outcome.text and "refused to talk" in outcome.text


def test_a_reply_raised_as_exception_is_judged_as_the_reply() -> None:
    refused = aiosmtplib.SMTPDataError(554, "5.6.0 bad content")
    assert trouble.from_exception(RCPT, refused, HOP) == trouble.from_reply(
        RCPT, 554, "5.6.0 bad content", HOP
    )


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (RouteFailure(550, "5.1.2", "host or domain name not found"), "bounced"),
        (RouteFailure(556, "5.1.10", "null MX"), "bounced"),
        (RouteFailure(451, "4.4.3", "DNS lookup timed out"), "deferred"),
    ],
)
def test_route_failures_keep_their_permanence(failure: RouteFailure, kind: str) -> None:
    outcomes = trouble.route_failed(["a@x.test", "b@x.test"], failure)
    assert [o.rcpt for o in outcomes] == ["a@x.test", "b@x.test"]
    for outcome in outcomes:
        assert (outcome.kind, outcome.code, outcome.status, outcome.text, outcome.hop) == (
            kind,
            failure.code,
            failure.status,
            failure.text,
            "",
        )
    assert failure.permanent == (kind == "bounced")


def test_session_level_verdicts_apply_to_every_recipient() -> None:
    rcpts = ["a@x.test", "b@x.test", "c@x.test"]
    by_reply = trouble.session_reply(rcpts, 550, "5.7.1 sender refused", HOP)
    by_error = trouble.session_failed(rcpts, TimeoutError(), HOP)
    assert [(o.rcpt, o.kind, o.status) for o in by_reply] == [
        (r, "bounced", "5.7.1") for r in rcpts
    ]
    assert [(o.rcpt, o.kind, o.status) for o in by_error] == [
        (r, "deferred", "4.4.2") for r in rcpts
    ]


def test_an_attempt_that_failed_as_a_whole_is_deferred() -> None:
    outcomes = trouble.attempt_failed(["a@x.test"], RuntimeError("boom"))
    assert (outcomes[0].kind, outcomes[0].status) == ("deferred", "4.3.0")


def test_local_refusals_bounce_with_their_status() -> None:
    assert (
        trouble.utf8_not_offered(RCPT, HOP).kind,
        trouble.utf8_not_offered(RCPT, HOP).status,
    ) == ("bounced", "5.6.7")
    big = trouble.too_big(RCPT, 2000, 1000, HOP)
    assert (big.kind, big.code, big.status) == ("bounced", 552, "5.3.4")
    assert "2000" in big.text and "1000" in big.text


def test_expiry_bounces_with_4_4_7_and_quotes_the_last_error() -> None:
    last = trouble.from_reply(RCPT, 451, "4.3.0 try later", HOP)
    outcome = trouble.expired(RCPT, last, "older error")
    assert (outcome.kind, outcome.code, outcome.status, outcome.hop) == (
        "bounced",
        451,
        "4.4.7",
        "",
    )
    assert "try later" in outcome.text and HOP in outcome.text
    without = trouble.expired(RCPT, None, "connection refused")
    assert (without.kind, without.code, without.status) == ("bounced", 451, "4.4.7")
    assert "connection refused" in without.text


def test_dns_exception_base_is_a_dns_failure() -> None:
    timeout = dns.exception.Timeout()  # type: ignore[no-untyped-call]
    outcome = trouble.from_exception(RCPT, timeout, "")
    assert outcome.status == "4.4.3" and outcome.hop == ""
