"""relay.accept.policy: every rule of issue 2 item 5, as tables of (client, envelope) -> reply; and
the throttle's refusal at MAIL FROM of a connection over its cap."""

from __future__ import annotations

import dataclasses

import pytest

from relay import replies
from relay.accept.address import Address, PathError, PathLimits, parse_mail, parse_rcpt
from relay.accept.policy import Gateway, check_mail, check_rcpt, is_feedback
from relay.replies import Reply
from tests.support.connections import plain
from ugem.core.model import Connection, ConnState

CONNECTED = plain("minfin.gov.kz", "10.0.0.1", domains=("minfin.gov.kz", "mf.kz", "пример.рф"))
SUSPENDED = dataclasses.replace(plain("akimat.kz", "10.0.0.2"), state=ConnState.SUSPENDED)
DISCONNECTED = dataclasses.replace(plain("old.kz", "10.0.0.3"), state=ConnState.DISCONNECTED)
GATEWAY = Gateway("gw.test", postmaster_routed=True)
UNROUTED = Gateway("gw.test", postmaster_routed=False)
LIMITS = PathLimits(gateway_domain="gw.test")
CLIENTS: dict[str, Connection | None] = {
    "outsider": None,
    "connected": CONNECTED,
    "suspended": SUSPENDED,
    "disconnected": DISCONNECTED,
}


class View:
    """A registry view that, unlike Registry, also returns disconnected connections."""

    def __init__(self, *conns: Connection) -> None:
        self.domains = {d: c for c in conns for d in c.domains}

    def by_domain(self, domain: str) -> Connection | None:
        return self.domains.get(domain)


VIEW = View(CONNECTED, SUSPENDED, DISCONNECTED)


def mail(text: str) -> Address | None:
    return parse_mail(f"FROM:<{text}> SMTPUTF8", LIMITS).address


def rcpt(text: str) -> Address:
    address = parse_rcpt(f"TO:<{text}>", LIMITS, smtputf8=True).address
    assert address is not None
    return address


MAIL_TABLE: list[tuple[str, str, Reply]] = [
    ("outsider", "", replies.SENDER_OK),
    ("outsider", "anyone@gmail.com", replies.SENDER_OK),
    ("outsider", "spoof@minfin.gov.kz", replies.SENDER_OK),  # judged by DMARC, not here
    ("connected", "", replies.SENDER_OK),
    ("connected", "clerk@minfin.gov.kz", replies.SENDER_OK),
    ("connected", "clerk@MINFIN.GOV.KZ", replies.SENDER_OK),
    ("connected", "clerk@mf.kz", replies.SENDER_OK),
    ("connected", "clerk@xn--e1afmkfd.xn--p1ai", replies.SENDER_OK),
    ("connected", "clerk@пример.рф", replies.SENDER_OK),
    ("connected", "clerk@sub.minfin.gov.kz", replies.SENDER_DENIED),  # exact domains only
    ("connected", "clerk@gov.kz", replies.SENDER_DENIED),
    ("connected", "clerk@akimat.kz", replies.SENDER_DENIED),
    ("connected", "clerk@gmail.com", replies.SENDER_DENIED),
    ("connected", "@minfin.gov.kz:clerk@gmail.com", replies.SENDER_DENIED),
    ("suspended", "", replies.SUSPENDED),
    ("suspended", "clerk@akimat.kz", replies.SUSPENDED),
    ("suspended", "clerk@gmail.com", replies.SUSPENDED),
    ("disconnected", "clerk@old.kz", replies.SENDER_OK),  # an outsider now
    ("disconnected", "anyone@gmail.com", replies.SENDER_OK),
]


@pytest.mark.parametrize(("client", "sender", "expected"), MAIL_TABLE)
def test_mail_from(client: str, sender: str, expected: Reply) -> None:
    assert check_mail(CLIENTS[client], mail(sender)) == expected


OVER_CAP_TABLE: list[tuple[str, str, Reply]] = [
    ("connected", "clerk@minfin.gov.kz", replies.THROTTLED),  # over its cap: deferred
    ("connected", "", replies.THROTTLED),
    ("connected", "clerk@gmail.com", replies.SENDER_DENIED),  # a permanent problem first
    ("suspended", "clerk@akimat.kz", replies.SUSPENDED),
    ("outsider", "anyone@gmail.com", replies.SENDER_OK),
]


@pytest.mark.parametrize(("client", "sender", "expected"), OVER_CAP_TABLE)
def test_mail_from_a_throttled_connection_over_its_cap(
    client: str, sender: str, expected: Reply
) -> None:
    assert check_mail(CLIENTS[client], mail(sender), over_cap=True) == expected
    assert replies.THROTTLED.code == 451 and replies.THROTTLED.status == "4.7.1"


RCPT_TABLE: list[tuple[str, str, Reply]] = [
    # inbound: only to domains of connected or suspended connections
    ("outsider", "clerk@minfin.gov.kz", replies.RCPT_OK),
    ("outsider", "Clerk@MinFin.Gov.KZ", replies.RCPT_OK),
    ("outsider", "clerk@mf.kz", replies.RCPT_OK),
    ("outsider", "clerk@пример.рф", replies.RCPT_OK),
    ("outsider", "clerk@xn--e1afmkfd.xn--p1ai", replies.RCPT_OK),
    ("outsider", "clerk@akimat.kz", replies.RCPT_OK),  # a suspended org still gets mail
    ("outsider", "postmaster@minfin.gov.kz", replies.RCPT_OK),
    ("outsider", "clerk@old.kz", replies.RELAY_DENIED),  # disconnected
    ("outsider", "victim@gmail.com", replies.RELAY_DENIED),
    ("outsider", "victim@sub.minfin.gov.kz", replies.RELAY_DENIED),
    ("outsider", "victim@minfin.gov.kz.evil.org", replies.RELAY_DENIED),
    ("outsider", "@minfin.gov.kz:victim@gmail.com", replies.RELAY_DENIED),  # source route
    ("outsider", "@minfin.gov.kz,@mf.kz:victim@gmail.com", replies.RELAY_DENIED),
    ("outsider", "@gmail.com:clerk@minfin.gov.kz", replies.RCPT_OK),  # route ignored
    # the gateway's own domain: no mailboxes, postmaster when routed
    ("outsider", "postmaster", replies.RCPT_OK),
    ("outsider", "PostMaster@GW.test", replies.RCPT_OK),
    ("outsider", "root@gw.test", replies.NO_LOCAL_MAILBOX),
    ("connected", "root@gw.test", replies.NO_LOCAL_MAILBOX),
    ("connected", "postmaster", replies.RCPT_OK),
    # outbound: a connected server may send anywhere
    ("connected", "friend@gmail.com", replies.RCPT_OK),
    ("connected", "clerk@old.kz", replies.RCPT_OK),
    ("connected", "clerk@akimat.kz", replies.RCPT_OK),
    ("connected", "friend@xn--80ak6aa92e.com", replies.RCPT_OK),
    # suspended: refused, temporarily
    ("suspended", "clerk@minfin.gov.kz", replies.SUSPENDED),
    ("suspended", "friend@gmail.com", replies.SUSPENDED),
    # a disconnected connection's address is an outsider's
    ("disconnected", "friend@gmail.com", replies.RELAY_DENIED),
    ("disconnected", "clerk@old.kz", replies.RELAY_DENIED),
    ("disconnected", "clerk@minfin.gov.kz", replies.RCPT_OK),
]


@pytest.mark.parametrize(("client", "to", "expected"), RCPT_TABLE)
def test_rcpt_to(client: str, to: str, expected: Reply) -> None:
    assert check_rcpt(CLIENTS[client], VIEW, rcpt(to), GATEWAY) == expected


@pytest.mark.parametrize("client", ["outsider", "connected"])
def test_postmaster_without_a_route_is_refused_by_name(client: str) -> None:
    for to in ("postmaster", "postmaster@gw.test"):
        assert check_rcpt(CLIENTS[client], VIEW, rcpt(to), UNROUTED) == replies.POSTMASTER_UNROUTED


FEEDBACK = Gateway("gw.test", postmaster_routed=False, feedback="fbl@gw.test")
FEEDBACK_TABLE: list[tuple[str, str, Reply]] = [
    # the feedback address takes mail from anyone, in any case of its local part
    ("outsider", "fbl@gw.test", replies.RCPT_OK),
    ("outsider", "FBL@GW.TEST", replies.RCPT_OK),
    ("connected", "fbl@gw.test", replies.RCPT_OK),
    ("disconnected", "fbl@gw.test", replies.RCPT_OK),
    ("suspended", "fbl@gw.test", replies.SUSPENDED),  # refused at MAIL FROM anyway
    # and nothing else of the gateway's domain changes
    ("outsider", "fbl2@gw.test", replies.NO_LOCAL_MAILBOX),
    ("outsider", "fbl@sub.gw.test", replies.RELAY_DENIED),
    ("outsider", "postmaster", replies.POSTMASTER_UNROUTED),
]


@pytest.mark.parametrize(("client", "to", "expected"), FEEDBACK_TABLE)
def test_the_feedback_address_is_the_gateways_own(client: str, to: str, expected: Reply) -> None:
    assert check_rcpt(CLIENTS[client], VIEW, rcpt(to), FEEDBACK) == expected
    assert is_feedback(rcpt(to), FEEDBACK) == (to.lower() == "fbl@gw.test")


def test_a_feedback_address_in_a_connected_domain_is_the_gateways_too() -> None:
    gateway = dataclasses.replace(GATEWAY, feedback="abuse@minfin.gov.kz")
    assert is_feedback(rcpt("Abuse@MinFin.Gov.KZ"), gateway)
    assert check_rcpt(None, VIEW, rcpt("abuse@minfin.gov.kz"), gateway) == replies.RCPT_OK
    assert not is_feedback(rcpt("abuse@minfin.gov.kz"), GATEWAY)  # empty: no such address


def test_gateway_domain_owned_by_a_connection_is_that_connections() -> None:
    gateway = Gateway("mf.kz", postmaster_routed=False)
    assert check_rcpt(None, VIEW, rcpt("clerk@mf.kz"), gateway) == replies.RCPT_OK


TRICKS = [
    "victim%gmail.com@minfin.gov.kz",
    "gmail.com!victim@minfin.gov.kz",
    "gmail.com!victim",
    '"victim@gmail.com"@minfin.gov.kz',
    '"victim%gmail.com"@minfin.gov.kz',
    "victim@[127.0.0.1]",
    "victim@gmail.com@minfin.gov.kz",
]


@pytest.mark.parametrize("to", TRICKS)
def test_tricks_never_reach_policy_as_local_mail(to: str) -> None:
    """Each trick addressed 'at' a connected domain is refused before policy could say yes."""
    with pytest.raises(PathError) as info:
        parse_rcpt(f"TO:<{to}>", LIMITS)
    assert not info.value.reply.is_positive
