"""Authentication-Results: (RFC 8601): the field the gateway adds, and the removal of forged ones.

`result_field(authserv_id, infos)` builds the field from `ResInfo`s (method,
result, optional reason and comment, properties such as smtp.mailfrom or
header.d), one result per line:

    Authentication-Results: gw.example;
    \tspf=pass smtp.mailfrom=a@b.example;
    \tdkim=pass header.d=b.example header.s=sel;
    \tdmarc=pass (p=reject dis=none) header.from=b.example

It promises plain ASCII and lines under 998 octets: values that come from the
message or the session (addresses, domains, selectors, reasons) are made
safe: a token or local-part@domain is kept as it is, anything else becomes a
quoted-string with quotes and backslashes escaped, control and non-ASCII
characters replaced by "?", at most `MAX_VALUE` characters; a line longer
than 78 octets is folded between words, never inside one.

`strip_ours(header, authserv_id)` gives the message (parsed once by
`relay.header_block.Header`) without every Authentication-Results: field
whose authserv-id (read past any comments and whitespace, a token or a
quoted-string) equals ours, ignoring case (RFC 8601 5: such fields from
outside are forged); fields of other servers, ARC-Authentication-Results: and
everything else are kept byte for byte, and only the header block is touched.
An Authentication-Results: field over MAX_FOREIGN_FIELD octets is removed
without reading its id (real ones are a few hundred octets; reading a huge
comment would cost time on every message that carries one). Nothing here
raises.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from relay.header_block import Header, field_value

FIELD = "authentication-results"
FIELD_NAME = b"Authentication-Results:"
MAX_VALUE = 200
MAX_FOREIGN_FIELD = 8192  # octets; a bigger Authentication-Results: is removed unread
MAX_LINE = 78
_TOKEN = re.compile(r"[^\x00-\x20\x7f()<>@,;:\\\"/\[\]?=]+")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDRESS = re.compile(rf"{_ATOM}(\.{_ATOM})*@[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
_UNSAFE = re.compile(r"[^\x20-\x7e]")


@dataclass(frozen=True)
class ResInfo:
    """One method's result: `dkim=fail reason="..." header.d=... header.s=...`."""

    method: str
    result: str
    props: Sequence[tuple[str, str]] = ()  # ("smtp.mailfrom", "a@b.example"), ...
    reason: str = ""
    comment: str = ""  # our own words, e.g. "p=reject dis=none"


def safe_value(text: str) -> str:
    """A property or reason value as RFC 8601 reads it: token, address, or quoted-string."""
    text = _UNSAFE.sub("?", text)[:MAX_VALUE]
    if text and (_TOKEN.fullmatch(text) or _ADDRESS.fullmatch(text)):
        return text
    return _quoted_string(text)


def _quoted_string(text: str) -> str:
    text = _UNSAFE.sub("?", text)[:MAX_VALUE]
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(text: str) -> str:
    return "(" + re.sub(r"[()\\]", "", _UNSAFE.sub("?", text))[:MAX_VALUE] + ")"


def _words(info: ResInfo) -> list[str]:
    words = [f"{safe_value(info.method)}={safe_value(info.result)}"]
    if info.comment:
        words.append(_comment(info.comment))
    if info.reason:
        words.append("reason=" + _quoted_string(info.reason))
    words += [f"{name}={safe_value(value)}" for name, value in info.props]
    return words


def _fold(words: list[str], indent: str) -> str:
    """Words joined by spaces, a line break (CRLF + indent) before one that would overflow."""
    lines = [indent + words[0]]
    for word in words[1:]:
        if len(lines[-1]) + 1 + len(word) > MAX_LINE:
            lines.append(indent + " " + word)
        else:
            lines[-1] += " " + word
    return "\r\n".join(lines)


def result_field(authserv_id: str, infos: Sequence[ResInfo]) -> bytes:
    """The whole Authentication-Results: field, CRLF-terminated ("none" with no results)."""
    head = f"{FIELD_NAME.decode()} {safe_value(authserv_id)};"
    if not infos:
        return f"{head} none\r\n".encode("ascii")
    parts = [_fold(_words(info), "\t") for info in infos]
    return (head + "\r\n" + ";\r\n".join(parts) + "\r\n").encode("ascii")


def authserv_id_of(value: bytes) -> str | None:
    """The authserv-id at the start of an Authentication-Results: value (None if there is none)."""
    text = value.decode("utf-8", "replace")
    i = _skip_cfws(text, 0)
    if i >= len(text):
        return None
    if text[i] == '"':
        return _quoted(text, i + 1)
    match = re.compile(r"[^\s;()]+").match(text, i)
    return match.group(0) if match else None


def _skip_cfws(text: str, i: int) -> int:
    """The index past whitespace and (nested, escaped) comments starting at i."""
    depth = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and depth:
            i += 2
            continue
        if char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif not depth and not char.isspace():
            return i
        i += 1
    return i


def _quoted(text: str, i: int) -> str | None:
    out: list[str] = []
    while i < len(text):
        char = text[i]
        if char == '"':
            return "".join(out)
        if char == "\\" and i + 1 < len(text):
            i += 1
            char = text[i]
        out.append(char)
        i += 1
    return None  # unterminated


def strip_ours(header: Header, authserv_id: str) -> bytes:
    """The message without the Authentication-Results: fields that claim our authserv-id."""
    ours = authserv_id.lower()
    pairs = zip(header.fields, header.names, strict=True)
    kept = [f for f, name in pairs if name != FIELD or not _claims(f, ours)]
    if len(kept) == len(header.fields):
        return header.block + header.rest
    return b"".join(kept) + header.rest


def _claims(field: bytes, ours: str) -> bool:
    if len(field) > MAX_FOREIGN_FIELD:
        return True  # too big to read its id cheaply: removed rather than trusted
    claimed = authserv_id_of(field_value(field))
    return claimed is not None and claimed.lower() == ours
