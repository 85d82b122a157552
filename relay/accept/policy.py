"""Who may send what through the gateway: a pure function of client, registry and envelope.

`check_mail(client, sender, over_cap)` and `check_rcpt(client, view, rcpt,
gateway)` return the `Reply` for MAIL FROM and RCPT TO. No I/O, no clock, no
logging: the caller looks up the client's connection (`Registry.by_address`)
and the addresses come parsed by `relay.accept.address`, so every rule below is
judged on the real, canonical destination. The rules (issue 2, item 5):

- a client of a `connected` connection may send to any recipient, with a
  sender in one of that connection's domains (exact domains: a subdomain
  must be registered as a domain of its own) or the null sender; another
  sender gets SENDER_DENIED (550 5.7.1);
- a client of a `suspended` connection gets SUSPENDED (451 4.7.1) at MAIL
  FROM (and at RCPT, should a caller ask);
- a client of a `connected` connection that the anomaly detector throttles
  and that is over its cap now (`over_cap`: the caller asks the node's
  `ugem.core.throttle` board) gets THROTTLED (451 4.7.1) at MAIL FROM, for a
  sender it may use; under the cap its mail is accepted as usual;
- any other client, the address of a `disconnected` connection included, may
  send only to recipients whose domain belongs to a `connected` or
  `suspended` connection (inbound mail still reaches a suspended
  organisation); anything else gets RELAY_DENIED (554 5.7.1) at RCPT;
- the gateway's own domain (the node's hostname, unless a connection owns
  it) has no mailboxes: `postmaster` there is accepted from anyone when
  `gateway.postmaster_routed`, else POSTMASTER_UNROUTED; any other local part
  gets NO_LOCAL_MAILBOX. This holds for connected clients too, so nothing is
  ever routed back at the gateway itself;
- the feedback address (`gateway.feedback`, `[reputation] fbl_address`; ""
  none) is the gateway's own mailbox of complaints: accepted from anyone
  (`is_feedback`; the local part in any case, the domain canonical), whatever
  its domain, and never relayed (relay.accept.commands keeps the message as a
  complaint). Left empty, that address gets the rules above like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from relay import replies
from relay.accept.address import Address
from relay.replies import Reply
from ugem.core.model import Connection, ConnState

LIVE = frozenset({ConnState.CONNECTED, ConnState.SUSPENDED})


class RegistryView(Protocol):
    def by_domain(self, domain: str) -> Connection | None: ...


@dataclass(frozen=True)
class Gateway:
    domain: str  # the node's hostname, canonical
    postmaster_routed: bool  # whether [delivery] routes names a next hop for `domain`
    feedback: str = ""  # where complaints arrive, local@canonical-domain ("": nowhere)


def check_mail(client: Connection | None, sender: Address | None, over_cap: bool = False) -> Reply:
    """The reply to MAIL FROM; `sender` None is the null sender <>; `over_cap`: the
    client's connection is throttled and over its cap now."""
    if client is None or client.state == ConnState.DISCONNECTED:
        return replies.SENDER_OK
    if client.state == ConnState.SUSPENDED:
        return replies.SUSPENDED
    if sender is None or sender.domain in client.domains:
        return replies.THROTTLED if over_cap else replies.SENDER_OK
    return replies.SENDER_DENIED


def check_rcpt(
    client: Connection | None, view: RegistryView, rcpt: Address, gateway: Gateway
) -> Reply:
    """The reply to RCPT TO for a client whose MAIL FROM was accepted."""
    if client is not None and client.state == ConnState.SUSPENDED:
        return replies.SUSPENDED
    if is_feedback(rcpt, gateway):
        return replies.RCPT_OK
    owner = view.by_domain(rcpt.domain)
    if rcpt.domain == gateway.domain and owner is None:
        return _gateway_mailbox(rcpt, gateway)
    if client is not None and client.state == ConnState.CONNECTED:
        return replies.RCPT_OK
    if owner is not None and owner.state in LIVE:
        return replies.RCPT_OK
    return replies.RELAY_DENIED


def _gateway_mailbox(rcpt: Address, gateway: Gateway) -> Reply:
    if not rcpt.is_postmaster:
        return replies.NO_LOCAL_MAILBOX
    return replies.RCPT_OK if gateway.postmaster_routed else replies.POSTMASTER_UNROUTED


def is_feedback(rcpt: Address, gateway: Gateway) -> bool:
    """Whether `rcpt` is the gateway's feedback address (complaints, never relayed)."""
    if not gateway.feedback:
        return False
    local, _, domain = gateway.feedback.rpartition("@")
    return rcpt.domain == domain and rcpt.local.lower() == local.lower()
