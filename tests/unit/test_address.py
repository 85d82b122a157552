"""relay.accept.address: SMTP paths parse to the real destination, or to a named refusal."""

from __future__ import annotations

import pytest

from relay import replies
from relay.accept.address import Address, PathError, PathLimits, parse_mail, parse_rcpt
from relay.replies import Reply

LIMITS = PathLimits(max_local=64, max_domain=255, gateway_domain="gw.test")
IDN = "xn--e1afmkfd.xn--p1ai"  # пример.рф

ACCEPTED_RCPTS: list[tuple[str, bool, Address]] = [
    ("TO:<user@example.org>", False, Address("user", "example.org")),
    ("to:<user@example.org>", False, Address("user", "example.org")),
    ("TO: <user@example.org>", False, Address("user", "example.org")),
    ("TO:<User@EXAMPLE.Org>", False, Address("User", "example.org")),
    (f"TO:<user@{IDN}>", False, Address("user", IDN)),
    ("TO:<user@ПРИМЕР.рф>", True, Address("user", IDN)),
    ("TO:<пользователь@пример.рф>", True, Address("пользователь", IDN)),
    ("TO:<@gw.test:user@ext.org>", False, Address("user", "ext.org")),
    ("TO:<@gw.test,@hop.example:user@ext.org>", False, Address("user", "ext.org")),
    ("TO:<@[127.0.0.1]:user@ext.org>", False, Address("user", "ext.org")),
    ('TO:<"john"@ext.org>', False, Address("john", "ext.org")),
    ('TO:<"john doe"@ext.org>', False, Address('"john doe"', "ext.org")),
    ('TO:<"a>b"@ext.org>', False, Address('"a>b"', "ext.org")),
    ('TO:<"a\\"b"@ext.org>', False, Address('"a\\"b"', "ext.org")),
    ("TO:<first.last+tag@ext.org>", False, Address("first.last+tag", "ext.org")),
    ("TO:<Postmaster>", False, Address("postmaster", "gw.test")),
    ("TO:<postmaster>", False, Address("postmaster", "gw.test")),
    ("TO:<postmaster@ext.org>", False, Address("postmaster", "ext.org")),
]


@pytest.mark.parametrize(("arg", "utf8", "expected"), ACCEPTED_RCPTS)
def test_rcpt_parses_to_the_real_destination(arg: str, utf8: bool, expected: Address) -> None:
    assert parse_rcpt(arg, LIMITS, utf8).address == expected


REFUSED_RCPTS: list[tuple[str, Reply]] = [
    # tricks that ask a host to route further: judged as refusals, never as local mail
    ("TO:<user%ext.org@gw.test>", replies.ROUTING_TRICK),
    ("TO:<user%ext.org@minfin.gov.kz>", replies.ROUTING_TRICK),
    ("TO:<ext.org!user@gw.test>", replies.ROUTING_TRICK),
    ("TO:<ext.org!user>", replies.ROUTING_TRICK),
    ('TO:<"user@ext.org"@gw.test>', replies.ROUTING_TRICK),
    ('TO:<"user%ext.org"@gw.test>', replies.ROUTING_TRICK),
    ('TO:<"ext.org!user"@gw.test>', replies.ROUTING_TRICK),
    ('TO:<"user@ext.org">', replies.ROUTING_TRICK),
    ('TO:<"us\\@er"@gw.test>', replies.ROUTING_TRICK),
    ("TO:<@gw.test:user%ext.org@gw.test>", replies.ROUTING_TRICK),
    # address literals
    ("TO:<user@[127.0.0.1]>", replies.ADDRESS_LITERAL),
    ("TO:<user@[IPv6:::1]>", replies.ADDRESS_LITERAL),
    ("TO:<user%ext.org@[127.0.0.1]>", replies.ROUTING_TRICK),
    # syntax
    ("TO:<user@ext.org@gw.test>", replies.BAD_RCPT_SYNTAX),
    ("TO:<>", replies.BAD_RCPT_SYNTAX),
    ("TO:user@ext.org", replies.BAD_RCPT_SYNTAX),
    ("TO:<user@ext.org", replies.BAD_RCPT_SYNTAX),
    ("TO:<user@ext.org>x", replies.BAD_RCPT_SYNTAX),
    ("TO <user@ext.org>", replies.BAD_RCPT_SYNTAX),
    ("FROM:<user@ext.org>", replies.BAD_RCPT_SYNTAX),
    ("TO:<user>", replies.BAD_RCPT_SYNTAX),
    ("TO:<user@localhost>", replies.BAD_RCPT_SYNTAX),
    ("TO:<user@>", replies.BAD_RCPT_SYNTAX),
    ("TO:<@ext.org>", replies.BAD_RCPT_SYNTAX),
    ("TO:<a..b@ext.org>", replies.BAD_RCPT_SYNTAX),
    ("TO:<.ab@ext.org>", replies.BAD_RCPT_SYNTAX),
    ("TO:<a b@ext.org>", replies.BAD_RCPT_SYNTAX),
    ("TO:<user@ex_ample.org>", replies.BAD_RCPT_SYNTAX),
    ("TO:<user@-ext.org>", replies.BAD_RCPT_SYNTAX),
    ("TO:<user@ext..org>", replies.BAD_RCPT_SYNTAX),
    # a trailing dot or an empty label: no RFC 5321 domain, refused rather than rewritten
    ("TO:<user@dept.kz..>", replies.BAD_RCPT_SYNTAX),
    ("TO:<user@dept.kz.>", replies.BAD_RCPT_SYNTAX),
    ("TO:<user@.dept.kz>", replies.BAD_RCPT_SYNTAX),
    ("TO:<user@dept..kz>", replies.BAD_RCPT_SYNTAX),
    ("TO:<user@dept.kz...>", replies.BAD_RCPT_SYNTAX),
    ("TO:<@gw.test:user@dept.kz..>", replies.BAD_RCPT_SYNTAX),
    ('TO:<"unterminated@ext.org>', replies.BAD_RCPT_SYNTAX),
    ("TO:<@gw.test user@ext.org>", replies.BAD_RCPT_SYNTAX),
    ("TO:<@gw.test:>", replies.BAD_RCPT_SYNTAX),
    # lengths and charsets
    ("TO:<" + "a" * 65 + "@ext.org>", replies.LOCAL_PART_TOO_LONG),
    (
        "TO:<user@" + "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + ".org>",
        replies.DOMAIN_TOO_LONG,
    ),
    ("TO:<üser@ext.org>", replies.NEEDS_SMTPUTF8),
    ("TO:<user@пример.рф>", replies.NEEDS_SMTPUTF8),
    ('TO:<"ü"@ext.org>', replies.NEEDS_SMTPUTF8),
]


@pytest.mark.parametrize(("arg", "reply"), REFUSED_RCPTS)
def test_rcpt_refusals_carry_their_named_reply(arg: str, reply: Reply) -> None:
    with pytest.raises(PathError) as info:
        parse_rcpt(arg, LIMITS)
    assert info.value.reply == reply


@pytest.mark.parametrize(
    "domain",
    [
        "dept.kz..",
        "dept.kz.",
        "пример.рф.",
        "пример.рф\u3002",
        "пример.рф\uff0e",
        "пример.рф".replace(".", "\u3002\u3002"),
    ],
)
def test_trailing_dots_and_empty_labels_are_refused_with_smtputf8_too(domain: str) -> None:
    """Issue 10, 10: `user@dept.kz..` was rewritten to `user@dept.kz`; UTS #46 dots alike."""
    with pytest.raises(PathError) as info:
        parse_rcpt(f"TO:<user@{domain}>", LIMITS, smtputf8=True)
    assert info.value.reply == replies.BAD_RCPT_SYNTAX


def test_local_part_of_exactly_the_limit_is_accepted() -> None:
    longest = "a" * 64
    assert parse_rcpt(f"TO:<{longest}@ext.org>", LIMITS).address == Address(longest, "ext.org")


def test_limits_come_from_the_caller() -> None:
    wide = PathLimits(max_local=128, max_domain=255, gateway_domain="gw.test")
    assert parse_rcpt("TO:<" + "a" * 100 + "@ext.org>", wide).address is not None


def test_null_sender_is_allowed_in_mail_only() -> None:
    assert parse_mail("FROM:<>", LIMITS).address is None
    with pytest.raises(PathError):
        parse_rcpt("TO:<>", LIMITS)


def test_postmaster_without_domain_is_for_rcpt_only() -> None:
    with pytest.raises(PathError) as info:
        parse_mail("FROM:<postmaster>", LIMITS)
    assert info.value.reply == replies.BAD_SENDER_SYNTAX


MAIL_CASES: list[tuple[str, Address | None, dict[str, str | None]]] = [
    ("FROM:<a@ext.org>", Address("a", "ext.org"), {}),
    (
        "FROM:<a@ext.org> SIZE=1000 BODY=8BITMIME",
        Address("a", "ext.org"),
        {"SIZE": "1000", "BODY": "8BITMIME"},
    ),
    ("FROM:<a@ext.org>  size=10", Address("a", "ext.org"), {"SIZE": "10"}),
    ("FROM:<ü@пример.рф> SMTPUTF8", Address("ü", IDN), {"SMTPUTF8": None}),
    ("FROM:<> BODY=7BIT", None, {"BODY": "7BIT"}),
    ("FROM:<@hop.example:a@ext.org>", Address("a", "ext.org"), {}),
]


@pytest.mark.parametrize(("arg", "address", "params"), MAIL_CASES)
def test_mail_path_and_parameters(
    arg: str, address: Address | None, params: dict[str, str | None]
) -> None:
    parsed = parse_mail(arg, LIMITS)
    assert parsed.address == address
    assert parsed.params == params


REFUSED_MAIL: list[tuple[str, Reply]] = [
    ("FROM:<a@ext.org> SIZE=", replies.SYNTAX_ERROR),
    ("FROM:<a@ext.org> SIZE=1 SIZE=2", replies.SYNTAX_ERROR),
    ("FROM:<a@ext.org> X_Y=1", replies.SYNTAX_ERROR),
    ("FROM:<a@ext.org> SIZE=1=2", replies.SYNTAX_ERROR),
    ("FROM:<a%b@ext.org>", replies.ROUTING_TRICK),
    ("FROM:<a@[10.0.0.1]>", replies.ADDRESS_LITERAL),
    ("FROM:<ü@ext.org>", replies.NEEDS_SMTPUTF8),
    ("FROM:a@ext.org", replies.BAD_SENDER_SYNTAX),
    ("FROM:<a@ext.org@gw.test>", replies.BAD_SENDER_SYNTAX),
    ("FROM:<a@dept.kz..>", replies.BAD_SENDER_SYNTAX),
    ("FROM:<a@dept.kz.>", replies.BAD_SENDER_SYNTAX),
    ("FROM:<a@dept..kz> SMTPUTF8", replies.BAD_SENDER_SYNTAX),
]


@pytest.mark.parametrize(("arg", "reply"), REFUSED_MAIL)
def test_mail_refusals(arg: str, reply: Reply) -> None:
    with pytest.raises(PathError) as info:
        parse_mail(arg, LIMITS)
    assert info.value.reply == reply


def test_str_of_an_address_is_a_mailbox_for_the_next_hop() -> None:
    assert str(parse_rcpt('TO:<"john doe"@Ext.ORG>', LIMITS).address) == '"john doe"@ext.org'
