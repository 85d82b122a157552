"""Feedback reports read: ARF complaints (RFC 5965), DSNs (RFC 3464) and plain abuse reports.

`parse_report(raw)` reads a message sent to the gateway's feedback address
(`[reputation] fbl_address`) and gives a `FeedbackReport`: its format, the
feedback type, who sent it, the report's machine-readable fields and the
header fields of the original message it is about, which is what a complaint
is traced back by (`ugem.core.services.complaints`). A pure function of the
bytes (no I/O, no clock), but CPU work on a stranger's input: callers run it
off the event loop. It reads with the standard library's `email` package
(the compat32 policy, whose idea of a container is the literal
"multipart/..." or "message/..." type; the limits below count on it).

Formats:
- `arf`: a multipart/report; report-type=feedback-report (at the top, or the
  first one inside a forward), whose message/feedback-report part gives the
  fields (Feedback-Type, User-Agent, Version, Original-Mail-From,
  Original-Rcpt-To, Arrival-Date, Source-IP, Reported-Domain, ...) and whose
  message/rfc822 or text/rfc822-headers part gives the original's headers;
- `dsn`: a multipart/report; report-type=delivery-status: the fields of the
  message/delivery-status part's per-message block and first per-recipient
  block, the original's headers as above;
- `plain`: any other message (an abuse report written by a person or a
  tool): the original's headers from its first message/rfc822 or
  text/rfc822-headers part, or else pasted into its first text/plain part
  (from the first line that starts with Received:, Return-Path:,
  DKIM-Signature:, From: or Message-ID:);
- `unparsed`: a limit below was exceeded or the parser failed; `problem` says which.
The feedback type is ARF's (one of `FEEDBACK_TYPES`; any other value is
"other"), "delivery-status" for a DSN, "abuse" for a plain report and
"unknown" for one not parsed.

Limits, as everything here is a stranger's: only the first `MAX_PARSE` bytes
are parsed (`truncated` beyond: the original's header fields come early, its
body is not needed); a text with more than `MAX_CONTAINERS` "multipart/" and
"message/" tokens (the parser recurses once per container, so this bounds the
depth) or more than `MAX_BOUNDARY_LINES` lines that begin with "--" (so the
number of parts) is not parsed at all; the search for the report's parts
visits at most `MAX_PARTS` parts, `MAX_DEPTH` levels deep; at most
`MAX_FIELDS` report fields and `MAX_ORIGINAL_FIELDS` original header fields
are kept, each name cut to `MAX_NAME` and each value (unfolded) to
`MAX_VALUE` characters. Every text kept is valid Unicode (bytes that are not
UTF-8 become U+FFFD) without control characters. A report without a part it
should have is kept with what it had and `problem` naming what was missing.

Never raises: an exception of the parser (RecursionError included) gives
format `unparsed` with the exception's name as the problem.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from email.utils import collapse_rfc2231_value
from enum import StrEnum
from itertools import islice

MAX_PARSE = 1024 * 1024  # bytes of a report parsed
MAX_CONTAINERS = 64  # "multipart/" and "message/" tokens in them
MAX_BOUNDARY_LINES = 1000  # lines that begin with "--"
MAX_PARTS = 100  # parts visited in the search for the report's parts
MAX_DEPTH = 6  # levels of nesting searched
MAX_FIELDS = 50  # report fields kept
MAX_ORIGINAL_FIELDS = 200  # header fields of the original kept
MAX_NAME = 76  # characters of a field name
MAX_VALUE = 998  # characters of a field value (RFC 5322's line)

FEEDBACK_TYPES = frozenset({"abuse", "fraud", "virus", "other", "not-spam", "auth-failure"})
ORIGINAL_TYPES = frozenset({"message/rfc822", "text/rfc822-headers"})
_PASTED = re.compile(
    rb"^(?:received|return-path|dkim-signature|from|message-id):", re.IGNORECASE | re.MULTILINE
)
_FOLD = re.compile(r"\r?\n[ \t]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Fields = tuple[tuple[str, str], ...]


class ReportFormat(StrEnum):
    ARF = "arf"  # RFC 5965 feedback report
    DSN = "dsn"  # RFC 3464 delivery status notification
    PLAIN = "plain"  # any other message: a person's or a tool's abuse report
    UNPARSED = "unparsed"  # over a limit, or the parser failed


@dataclass(frozen=True)
class FeedbackReport:
    format: ReportFormat
    feedback_type: str  # see the module's docstring
    reporter: str = ""  # the report's From:
    fields: Fields = ()  # the report's machine-readable fields, as sent, in order
    original: Fields = ()  # the original message's header fields, in order
    problem: str = ""  # "" or what could not be read
    truncated: bool = False  # only the first MAX_PARSE bytes were read

    def value(self, name: str) -> str:
        """The first report field `name` (any case), "" when absent."""
        return next(iter(self.values(name)), "")

    def values(self, name: str) -> tuple[str, ...]:
        return _all(self.fields, name)

    def header(self, name: str) -> str:
        """The first (topmost) header field `name` of the original, "" when absent."""
        return next(iter(self.headers(name)), "")

    def headers(self, name: str) -> tuple[str, ...]:
        return _all(self.original, name)


def _all(fields: Fields, name: str) -> tuple[str, ...]:
    wanted = name.lower()
    return tuple(value for key, value in fields if key.lower() == wanted)


def parse_report(raw: bytes) -> FeedbackReport:
    """The report `raw` is; never raises (see the module's docstring)."""
    text, truncated = raw[:MAX_PARSE], len(raw) > MAX_PARSE
    problem = too_complex(text)
    if problem:
        return unparsed(problem, truncated)
    try:
        report = _read(BytesParser(policy=compat32).parsebytes(text))
    except Exception as exc:  # RecursionError, or anything the stdlib trips on
        return unparsed(f"the report could not be parsed ({type(exc).__name__})", truncated)
    return replace(report, truncated=truncated)


def unparsed(problem: str, truncated: bool = False) -> FeedbackReport:
    """A report that could not be read, and why."""
    return FeedbackReport(ReportFormat.UNPARSED, "unknown", problem=problem, truncated=truncated)


def too_complex(text: bytes) -> str:
    """Why `text` is not to be parsed at all, or ""."""
    lower = text.lower()
    if lower.count(b"multipart/") + lower.count(b"message/") > MAX_CONTAINERS:
        return f"more than {MAX_CONTAINERS} multipart or message parts"
    if text.count(b"\n--") > MAX_BOUNDARY_LINES:
        return f"more than {MAX_BOUNDARY_LINES} part boundaries"
    return ""


def _read(msg: Message) -> FeedbackReport:
    reporter = _first(msg, "from")
    report = _find(msg, lambda part: part.get_content_type() == "multipart/report")
    kind = "" if report is None else _report_type(report)
    if report is not None and kind == "feedback-report":
        return replace(_arf(report), reporter=reporter)
    if report is not None and kind == "delivery-status":
        return replace(_dsn(report), reporter=reporter)
    return replace(_plain(msg), reporter=reporter)


def _arf(report: Message) -> FeedbackReport:
    parts = _children(report)
    feedback = next((p for p in parts if p.get_content_type() == "message/feedback-report"), None)
    original, missing = _original(parts)
    fields = () if feedback is None else _fields(_inner(feedback), MAX_FIELDS)
    kind = _feedback_type(_all(fields, "feedback-type"))
    if feedback is None:
        missing = "; ".join(filter(None, ["no message/feedback-report part", missing]))
    return FeedbackReport(ReportFormat.ARF, kind, "", fields, original, missing)


def _dsn(report: Message) -> FeedbackReport:
    parts = _children(report)
    status = next((p for p in parts if p.get_content_type() == "message/delivery-status"), None)
    blocks = [] if status is None else _children(status)[:2]  # per-message, first recipient
    fields = tuple(f for block in blocks for f in _fields(block, MAX_FIELDS))[:MAX_FIELDS]
    original, missing = _original(parts)
    if status is None:
        missing = "; ".join(filter(None, ["no message/delivery-status part", missing]))
    return FeedbackReport(ReportFormat.DSN, "delivery-status", "", fields, original, missing)


def _plain(msg: Message) -> FeedbackReport:
    found = _find(msg, lambda part: part.get_content_type() in ORIGINAL_TYPES)
    if found is not None:
        original, missing = _original([found])
        return FeedbackReport(ReportFormat.PLAIN, "abuse", original=original, problem=missing)
    text = _find(msg, lambda part: part.get_content_type() == "text/plain")
    pasted = () if text is None else _pasted(text)
    missing = "" if pasted else "no original message or header fields in the report"
    return FeedbackReport(ReportFormat.PLAIN, "abuse", original=pasted, problem=missing)


def _original(parts: list[Message]) -> tuple[Fields, str]:
    """The original's header fields from the first part that holds them, and what is missing."""
    part = next((p for p in parts if p.get_content_type() in ORIGINAL_TYPES), None)
    if part is None:
        return (), "no message/rfc822 or text/rfc822-headers part"
    if part.get_content_type() == "message/rfc822":
        inner = _inner(part)
    else:
        inner = BytesHeaderParser(policy=compat32).parsebytes(_payload(part))
    fields = _fields(inner, MAX_ORIGINAL_FIELDS)
    return fields, "" if fields else "the original message has no header fields"


def _pasted(part: Message) -> Fields:
    """Header fields pasted into a text part, from the first line that starts one."""
    body = _payload(part)
    start = _PASTED.search(body)
    if start is None:
        return ()
    headers = BytesHeaderParser(policy=compat32).parsebytes(body[start.start() :])
    return _fields(headers, MAX_ORIGINAL_FIELDS)


def _payload(part: Message) -> bytes:
    """A leaf part's body, its transfer encoding undone; b"" when it has none."""
    body = part.get_payload(decode=True)
    return body[:MAX_PARSE] if isinstance(body, bytes) else b""


def _inner(part: Message) -> Message:
    """The message a message/* part holds (an empty one when it holds none)."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    return Message(policy=compat32)


def _children(part: Message) -> list[Message]:
    payload = part.get_payload()
    if not isinstance(payload, list):
        return []
    return [p for p in payload[:MAX_PARTS] if isinstance(p, Message)]


def _walk(msg: Message) -> Iterator[Message]:
    """Parts in pre-order, at most MAX_PARTS, MAX_DEPTH deep; message/* parts are leaves."""
    stack, seen = [(msg, 0)], 0
    while stack and seen < MAX_PARTS:
        part, depth = stack.pop()
        seen += 1
        yield part
        if depth < MAX_DEPTH and part.get_content_maintype() == "multipart":
            stack.extend((child, depth + 1) for child in reversed(_children(part)))


def _find(msg: Message, wanted: Callable[[Message], bool]) -> Message | None:
    return next((part for part in _walk(msg) if wanted(part)), None)


def _report_type(report: Message) -> str:
    value = report.get_param("report-type", header="content-type")
    if value is None:
        return ""
    return str(collapse_rfc2231_value(value)).strip().lower()


def _feedback_type(values: tuple[str, ...]) -> str:
    value = values[0].strip().lower() if values else ""
    return value if value in FEEDBACK_TYPES else "other"


def _first(msg: Message, name: str) -> str:
    return next((v for k, v in _fields(msg, MAX_ORIGINAL_FIELDS) if k.lower() == name), "")


def _fields(msg: Message, most: int) -> Fields:
    """The first `most` header fields of `msg`, as clean text."""
    return tuple(
        (clean(str(name), MAX_NAME), clean(str(value), MAX_VALUE))
        for name, value in islice(msg.raw_items(), most)
    )


def clean(value: str, limit: int = MAX_VALUE) -> str:
    """`value` unfolded, as valid Unicode without control characters, at most `limit` long."""
    try:
        raw = value.encode("utf-8", "surrogateescape")  # the bytes the parser escaped
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "replace")
    text = _FOLD.sub(" ", raw.decode("utf-8", "replace"))
    return _CONTROL.sub("", text).strip()[:limit]
