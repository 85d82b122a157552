"""All delivery failure policy in one place (like Postfix's smtp_trouble.c).

Every recipient of a delivery attempt ends with one `RcptOutcome`: delivered,
deferred (kept and retried) or bounced (a DSN goes to the sender). The rules:

- a reply decides by its class: 2xx delivered, 4xx deferred, 5xx bounced; any
  other code (a malformed reply) is deferred. The enhanced status code
  (RFC 3463) is taken from the reply text when its class agrees with the code,
  else it defaults to 2.0.0 / 4.0.0 / 5.0.0;
- a failure without a reply (timeout, refused or reset connection, failed TLS
  handshake, DNS trouble, anything unexpected) is deferred with a local
  pseudo-reply 451 and a status saying which (4.4.1 no answer, 4.4.2 bad
  connection, 4.7.5 TLS, 4.4.3 DNS, 4.3.0 internal);
- a routing failure (`RouteFailure`, `relay.deliver.routing`) keeps its own code and
  permanence: no such domain or a null MX bounce, DNS trouble defers; a hop that
  cannot give the TLS a destination requires (`TlsRequired`) is a local 451
  4.7.4 or 4.7.5 read like a reply;
- a greeting or EHLO refusal is a site problem, not a verdict on the
  recipients: deferred even when the code is 5xx (Postfix's
  smtp_skip_5xx_greeting), so another hop or a later attempt can take it;
- a session-level failure (all hops down, MAIL FROM refused, the connection
  lost mid-transaction) applies to every recipient still without a reply.

The codes and statuses the relay gives a destination's failures itself (routing,
TLS requirements, the SMTP replies a transaction reads) are named here, shared by
the code that decides them and by the tests. Functions here never raise and
never do I/O.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import aiosmtplib
import dns.exception

from ugem.core.errors import DeliveryError, RouteFailure, TlsRequired

Kind = Literal["delivered", "deferred", "bounced"]

LOCAL_TEMPFAIL = 451  # the pseudo-reply code of a failure that had no reply
START_INPUT = 354  # the reply to DATA that asks for the text
CLOSING = 421  # the hop is closing the session


class Verdict(NamedTuple):
    """A failure decided here rather than read from a reply: code and enhanced status."""

    code: int
    status: str


# Routing (`relay.deliver.routing`): permanent ones bounce, the others defer.
NO_SUCH_DOMAIN = Verdict(550, "5.1.2")  # NXDOMAIN, an IP literal or a malformed domain
NULL_MX = Verdict(556, "5.1.10")  # the domain says it takes no mail (RFC 7505)
NO_MAIL_HOST = Verdict(550, "5.4.4")  # no MX and no address record
DNS_FAILED = Verdict(LOCAL_TEMPFAIL, "4.4.3")  # a lookup timed out or failed, MX hosts unresolved
NO_HOP = Verdict(LOCAL_TEMPFAIL, "4.4.4")  # a route or connection with no hop to try
# The TLS a destination requires (`relay.deliver.requirements`), with LOCAL_TEMPFAIL
# (`TlsRequired`):
TLS_NOT_GIVEN = "4.7.4"  # the hop offers no STARTTLS, or refuses it
TLS_FAILED = "4.7.5"  # the handshake or the certificate failed, or an MX host not allowed
_STATUS = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")


@dataclass(frozen=True)
class RcptOutcome:
    """What happened to one recipient in one attempt; `hop` is "host:port" or "".
    `connect` and `transfer` are the attempt's seconds opening its session (0: a reused
    one) and running the transaction; they are measurements, not part of the verdict."""

    rcpt: str
    kind: Kind
    code: int
    status: str
    text: str
    hop: str
    connect: float = field(default=0.0, compare=False)
    transfer: float = field(default=0.0, compare=False)

    def __str__(self) -> str:
        return f"{self.code} {self.status} {self.text}"

    @property
    def said(self) -> str:
        """The reply's text with its enhanced status in front, as a hop writes it (what
        `ugem.core.reply_class.classify` reads: "4.7.28" may be all a reply says)."""
        if not self.status or self.text.startswith(self.status):
            return self.text
        return f"{self.status} {self.text}"


def kind_of(code: int) -> Kind:
    """The outcome a reply code means; anything that is not 2xx or 5xx is deferred."""
    if 200 <= code < 300:
        return "delivered"
    if 500 <= code < 600:
        return "bounced"
    return "deferred"


def split_status(code: int, message: str) -> tuple[str, str]:
    """(enhanced status, text) from a reply's text; the status defaults to <class>.0.0.

    Multi-line replies (lines joined by newlines) become one line; each line's
    repeated status code is dropped.
    """
    status = ""
    parts = []
    for line in message.splitlines() or [""]:
        found = _STATUS.match(line.strip())
        if found and found.group(1) == str(code // 100):
            status = status or found.group(0)
            line = line.strip()[found.end() :]
        parts.append(line.strip())
    text = " ".join(p for p in parts if p)
    if not status:
        klass = {2: "2", 5: "5"}.get(code // 100, "4")
        status = f"{klass}.0.0"
    return status, text


def from_reply(rcpt: str, code: int, message: str, hop: str) -> RcptOutcome:
    """The outcome of one SMTP reply for one recipient."""
    status, text = split_status(code, message)
    kind = kind_of(code)
    if kind == "deferred" and not 400 <= code < 500:
        text = f"unexpected reply {code} {text}".rstrip()
        code, status = LOCAL_TEMPFAIL, "4.5.0"
    return RcptOutcome(rcpt, kind, code, status, text, hop)


def local(rcpt: str, code: int, status: str, text: str, hop: str = "") -> RcptOutcome:
    """An outcome decided here, without a reply for this recipient."""
    return RcptOutcome(rcpt, kind_of(code), code, status, text, hop)


def _deferred(status: str, text: str) -> tuple[int, str, str]:
    return LOCAL_TEMPFAIL, status, text


def _classify(exc: BaseException, hop: str) -> tuple[int, str, str]:
    """(code, status, text) of a failure that has no reply of its own."""
    where = f" {hop}" if hop else ""
    if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError):
        return _deferred("4.4.1", f"timed out connecting to{where}")
    if isinstance(exc, aiosmtplib.SMTPConnectError | ConnectionRefusedError):
        return _deferred("4.4.1", f"cannot connect to{where}: {exc}")
    if isinstance(exc, ssl.SSLError):
        return _deferred(TLS_FAILED, f"TLS handshake with{where} failed: {exc}")
    if isinstance(exc, TimeoutError):
        return _deferred("4.4.2", f"timed out waiting for{where}: {exc}")
    if isinstance(exc, ConnectionError | aiosmtplib.SMTPServerDisconnected):
        return _deferred("4.4.2", f"lost connection with{where}: {exc}")
    if isinstance(exc, dns.exception.DNSException):
        return _deferred(DNS_FAILED.status, f"DNS lookup failed: {exc}")
    if isinstance(exc, OSError):
        return _deferred("4.4.2", f"network error with{where}: {exc}")
    return _deferred("4.3.0", f"internal error: {type(exc).__name__}: {exc}")


def from_exception(rcpt: str, exc: BaseException, hop: str) -> RcptOutcome:
    """The outcome for one recipient of a failure raised instead of a reply."""
    if isinstance(exc, RouteFailure):
        return local(rcpt, exc.code, exc.status, exc.text)
    if isinstance(exc, aiosmtplib.SMTPConnectResponseError | aiosmtplib.SMTPHeloError):
        status, text = split_status(exc.code, exc.message)
        return local(
            rcpt,
            LOCAL_TEMPFAIL,
            "4.4.0",
            f"{hop} refused to talk to us: {exc.code} {status} {text}",
            hop,
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException | TlsRequired):
        return from_reply(rcpt, exc.code, exc.message, hop)
    code, status, text = _classify(exc, hop)
    return RcptOutcome(rcpt, "deferred", code, status, text, hop)


def all_rcpts(rcpts: Iterable[str], outcome: Callable[[str], RcptOutcome]) -> list[RcptOutcome]:
    """Apply one session-level verdict to every recipient: `outcome(rcpt)` for each."""
    return [outcome(rcpt) for rcpt in rcpts]


def session_failed(rcpts: Iterable[str], exc: BaseException, hop: str) -> list[RcptOutcome]:
    """Every recipient gets the outcome of one exception (all hops down, lost session)."""
    return all_rcpts(rcpts, lambda rcpt: from_exception(rcpt, exc, hop))


def session_reply(rcpts: Iterable[str], code: int, message: str, hop: str) -> list[RcptOutcome]:
    """Every recipient gets the outcome of one reply (MAIL FROM, DATA)."""
    return all_rcpts(rcpts, lambda rcpt: from_reply(rcpt, code, message, hop))


def route_failed(rcpts: Iterable[str], failure: DeliveryError) -> list[RcptOutcome]:
    """Every recipient of a domain that could not be routed."""
    return session_failed(rcpts, failure, "")


def attempt_failed(rcpts: Iterable[str], exc: BaseException) -> list[RcptOutcome]:
    """Every recipient of an attempt that failed as a whole (a DeliveryError, a bug)."""
    return session_failed(rcpts, exc, "")


def internal_error(rcpt: str, exc: BaseException) -> RcptOutcome:
    """An unexpected error while delivering: deferred, never bounced."""
    return local(rcpt, LOCAL_TEMPFAIL, "4.3.0", f"internal error: {type(exc).__name__}")


def utf8_not_offered(rcpt: str, hop: str) -> RcptOutcome:
    """A non-ASCII address, and the next hop does not offer SMTPUTF8 (RFC 6531)."""
    return local(
        rcpt, 550, "5.6.7", "SMTPUTF8 is required but was not offered by the next hop", hop
    )


def too_big(rcpt: str, size: int, limit: int, hop: str) -> RcptOutcome:
    """The message exceeds the fixed size limit the next hop announced (RFC 1870)."""
    return local(
        rcpt,
        552,
        "5.3.4",
        f"message size {size} exceeds the fixed limit of {limit} bytes of the next hop",
        hop,
    )


def expired(rcpt: str, last: RcptOutcome | None, last_error: str) -> RcptOutcome:
    """A recipient still deferred when the queue lifetime ran out: bounced with 4.4.7.

    The code is that of the last deferral (the remote's when there was one), so the
    DSN's diagnostic quotes what the next hop last said.
    """
    code = last.code if last is not None and last.code else LOCAL_TEMPFAIL
    reason = last.text if last is not None else last_error
    where = f"{last.hop} said: " if last is not None and last.hop else ""
    text = "delivery time expired"
    if reason:
        text += f"; last error: {where}{reason}"
    return RcptOutcome(rcpt, "bounced", code, "4.4.7", text, "")
