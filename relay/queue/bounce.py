"""Bounces: the delivery status notification (DSN) sent back to a message's sender.

`make_dsn` turns the recipients that failed in one delivery attempt into one
RFC 3464 report (multipart/report; report-type=delivery-status) with three
parts: a human-readable explanation, the machine-readable delivery-status and
the original message's headers (never its body). The DSN is a new
`QueuedMessage` from the null sender to the original sender, originating at
the gateway itself (no connection, no client address), for the scheduler to
queue like any other mail; `returned` is the same DSN for a message an operator
returns to its sender. A bounce is never bounced: for a null-sender
message `make_dsn` returns None. The text is built as bytes with CRLF line
endings only, no bare CR or LF, and no line longer than 998 octets (remote
texts are cleaned and clipped, over-long header lines folded). It does no I/O
and raises nothing for any input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from email.utils import formatdate

from relay.deliver.trouble import RcptOutcome
from relay.queue.message import QueuedMessage, new_queue_id

CRLF = b"\r\n"
MAX_LINE = 998  # RFC 5322 2.1.1, CRLF excluded
_TEXT_CLIP = 500  # longest remote reply text quoted, in characters
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
SUBJECT = "Undelivered Mail Returned to Sender"
RETURNED = "deleted by the postmaster"  # the diagnostic of mail an operator returns


def make_dsn(
    msg: QueuedMessage, failed: Sequence[RcptOutcome], reporting_mta: str, now: float
) -> QueuedMessage | None:
    """The DSN telling msg.sender that `failed` recipients bounced; None for a bounce."""
    if msg.is_bounce or not failed:
        return None
    dsn_id = new_queue_id(now)
    parts = [
        _notification(failed, reporting_mta),
        _delivery_status(msg, failed, reporting_mta),
        _original_headers(msg.data or b""),
    ]
    boundary = _boundary(dsn_id, reporting_mta, b"".join(parts))
    data = _join(
        [
            *_top_headers(msg, dsn_id, boundary, reporting_mta, now),
            b"",
            b"This is a MIME-encapsulated message.",
            b"",
        ]
    )
    for part in parts:
        data += b"--" + boundary + CRLF + part + CRLF
    data += b"--" + boundary + b"--" + CRLF
    return QueuedMessage(
        id=dsn_id,
        sender="",
        rcpts=[msg.sender],
        data=data,
        size=len(data),
        connection="",
        client_ip="",
        received_at=now,
        original_rcpts=[msg.sender],
    )


def returned(
    msg: QueuedMessage, reason: str, reporting_mta: str, now: float
) -> QueuedMessage | None:
    """The DSN of a message an operator returns to its sender (`ugem queue bounce`): each
    recipient still to deliver failed, 5.0.0, "deleted by the postmaster: <reason>";
    None for a bounce, as `make_dsn`."""
    text = f"{RETURNED}: {clean(reason)}" if reason.strip() else RETURNED
    failed = [RcptOutcome(rcpt, "bounced", 0, "5.0.0", text, "") for rcpt in msg.rcpts]
    return make_dsn(msg, failed, reporting_mta, now)


def clean(text: str, limit: int = _TEXT_CLIP) -> str:
    """A remote text fit to quote in one header line: no control characters, clipped."""
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def diagnostic(outcome: RcptOutcome) -> str:
    """The Diagnostic-Code value: the SMTP reply when there was one, else the local reason."""
    text = clean(outcome.text)
    if outcome.code < 200:
        return f"X-UGEM; {text}"
    if outcome.status and not text.startswith(outcome.status):
        text = f"{outcome.status} {text}"
    return f"smtp; {outcome.code} {text}".rstrip()


def _top_headers(
    msg: QueuedMessage, dsn_id: str, boundary: bytes, host: str, now: float
) -> list[bytes]:
    return [
        _enc(f"From: MAILER-DAEMON@{host} (Mail Delivery System)"),
        _enc(f"To: <{msg.sender}>"),
        _enc(f"Subject: {SUBJECT}"),
        _enc(f"Date: {formatdate(now, usegmt=True)}"),
        _enc(f"Message-ID: <{dsn_id}.dsn@{host}>"),
        b"Auto-Submitted: auto-replied",
        b"MIME-Version: 1.0",
        b"Content-Type: multipart/report; report-type=delivery-status;",
        b'\tboundary="' + boundary + b'"',
        b"Content-Transfer-Encoding: 8bit",
    ]


def _notification(failed: Sequence[RcptOutcome], host: str) -> bytes:
    lines = [
        "Content-Description: Notification",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        f"This is the mail system at host {host}.",
        "",
        "I'm sorry to have to inform you that your message could not",
        "be delivered to one or more recipients. Its headers are attached below.",
        "",
        "For further assistance, please send mail to postmaster.",
        "",
        "                   The mail system",
        "",
    ]
    for outcome in failed:
        where = f"host {outcome.hop} said: " if outcome.hop else ""
        lines.append(clean(f"<{outcome.rcpt}>: {where}{_human(outcome)}", MAX_LINE))
    return _join(_enc(line) for line in lines)


def _human(outcome: RcptOutcome) -> str:
    reply = " ".join(str(p) for p in (outcome.code or "", outcome.status) if p)
    return f"{reply} {clean(outcome.text)}".strip()


def _delivery_status(msg: QueuedMessage, failed: Sequence[RcptOutcome], host: str) -> bytes:
    lines = [
        "Content-Description: Delivery report",
        "Content-Type: message/delivery-status",
        "",
        f"Reporting-MTA: dns; {host}",
        f"X-UGEM-Queue-ID: {msg.id}",
        f"Arrival-Date: {formatdate(msg.received_at, usegmt=True)}",
    ]
    for outcome in failed:
        lines += [
            "",
            f"Final-Recipient: {_addr_type(outcome.rcpt)}; {outcome.rcpt}",
            "Action: failed",
            f"Status: {outcome.status or _default_status(outcome)}",
        ]
        if outcome.hop:
            lines.append(f"Remote-MTA: dns; {_hop_host(outcome.hop)}")
        lines.append(f"Diagnostic-Code: {diagnostic(outcome)}")
    return _join(_enc(line) for line in lines)


def _addr_type(addr: str) -> str:
    return "rfc822" if addr.isascii() else "utf-8"  # RFC 6533 for SMTPUTF8 addresses


def _default_status(outcome: RcptOutcome) -> str:
    return "4.0.0" if 400 <= outcome.code < 500 else "5.0.0"


def _hop_host(hop: str) -> str:
    """'host:port' or '[v6]:port' to the host alone; a bare host unchanged."""
    host, sep, port = hop.rpartition(":")
    if sep and port.isdigit() and host and (host.count(":") == 0 or host.startswith("[")):
        hop = host
    return hop.strip("[]")


def _original_headers(data: bytes) -> bytes:
    """The part holding the original header section, folded to legal line lengths."""
    head = _header_section(data)
    body = _join(_fold(line) for line in head.splitlines() if line)
    ctype = b"text/rfc822-headers" if head.isascii() else b"message/global-headers"
    return _join(
        [
            b"Content-Description: Undelivered Message Headers",
            b"Content-Type: " + ctype,
            b"Content-Transfer-Encoding: 8bit",
            b"",
            body,
        ]
    )


def _header_section(data: bytes) -> bytes:
    """The original's headers: everything before the first empty line (CRLF or LF)."""
    if data.startswith((b"\r\n", b"\n")):
        return b""
    end = data.find(b"\r\n\r\n")
    end = len(data) if end < 0 else end
    lf_end = data.find(b"\n\n", 0, end)
    return data[: lf_end if lf_end >= 0 else end]


def _fold(line: bytes) -> bytes:
    """One header line (CR/LF-free) as one or more lines of at most MAX_LINE octets."""
    line = line.replace(b"\r", b" ").replace(b"\n", b" ").replace(b"\x00", b" ")
    chunks = [line[i : i + MAX_LINE - 1] for i in range(0, len(line), MAX_LINE - 1)]
    return (CRLF + b"\t").join(chunks) if chunks else b""


def _boundary(dsn_id: str, host: str, content: bytes) -> bytes:
    """Postfix's style of boundary, lengthened until no part's content holds it."""
    boundary = f"{dsn_id}/{host}".encode("ascii", "replace")
    while boundary in content:
        boundary += b"=" + new_queue_id().encode()
    return boundary


def _enc(line: str) -> bytes:
    """A line as UTF-8, clipped (on a character boundary) to MAX_LINE octets."""
    data = line.encode("utf-8", "replace")
    if len(data) > MAX_LINE:
        data = data[:MAX_LINE].decode("utf-8", "ignore").encode("utf-8")
    return data


def _join(lines: Iterable[bytes]) -> bytes:
    return b"".join(line + CRLF for line in lines)
