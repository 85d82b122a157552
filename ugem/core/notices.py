"""Notices to organisations: their templates and the mail that carries them.

A template is a text file `<kind>.<lang>.txt` (lang: kk, ru, en): a first line
`Subject: ...`, an empty line, then the body; `$name` (or `${name}`) is
replaced by a value, `$$` is a dollar sign. The shipped templates live in
`ugem/core/templates/notices/`; a file of the same name in the operator's
directory (`[admin] templates_dir`) replaces the shipped one. `Templates.check`
reads and renders every template with sample values, so an unreadable
template or one naming an unknown `$name` stops the node at start with a
`ConfigError` naming the file, not later at the first notice.

`compose` builds the message: the organisation's language first and English
below it (English alone for English, and for the operators' `ALERTS`),
UTF-8 text in quoted-printable, the Subject and display names in RFC 2047
encoded words (written here: the `email` package loses the space between an
ASCII word and a non-ASCII one), Date (Almaty time), Message-ID, From the postmaster,
`Auto-Submitted: auto-generated`, CRLF line endings only, no header line over
76 characters and control characters of values kept out of headers. It does
no I/O and raises `UsageError` only for an address that cannot be written in
a header.
"""

from __future__ import annotations

import base64
import datetime as dt
import quopri
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import format_datetime, make_msgid
from enum import StrEnum
from importlib import resources
from pathlib import Path

from ugem.core.errors import ConfigError, UsageError
from ugem.core.model import Contact, Language
from ugem.core.workdays import ALMATY

SEPARATOR = "-" * 72
LINE = 76  # longest header line we write (RFC 2047 5: 76 with encoded words)
WORD_OCTETS = 39  # UTF-8 octets in one encoded word: 64 characters with its markers
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ADDR_SPEC = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")


class NoticeKind(StrEnum):
    CONNECTED = "connected"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    RESUMED = "resumed"
    DISCONNECT_SCHEDULED = "disconnect-scheduled"
    DISCONNECTED = "disconnected"
    ALERT_SUSPENDED = "alert-suspended"  # to the operators, in English only
    ALERT_WOULD_SUSPEND = "alert-would-suspend"  # to the operators: shadow mode, an exemption
    ALERT_THROTTLED = "alert-throttled"  # to the operators: the detector throttled a connection
    ALERT_GATEWAY = "alert-gateway"  # to the operators: an incident of the gateway itself


ALERTS = frozenset(  # to the operators, in English only
    {
        NoticeKind.ALERT_SUSPENDED,
        NoticeKind.ALERT_WOULD_SUSPEND,
        NoticeKind.ALERT_THROTTLED,
        NoticeKind.ALERT_GATEWAY,
    }
)


COMMON = ("org_name", "domain", "domains", "servers", "date", "reason", "postmaster", "gateway")
GATEWAY = ("date", "reason", "postmaster", "gateway", "actor", "incident", "event", "addresses")
APPLICATION = ("application_number", "application_date")
FIELDS: dict[NoticeKind, tuple[str, ...]] = {
    NoticeKind.CONNECTED: (*COMMON, *APPLICATION),
    NoticeKind.REJECTED: (*COMMON, *APPLICATION, "reasons", "resubmit_from"),
    NoticeKind.SUSPENDED: COMMON,
    NoticeKind.RESUMED: COMMON,
    NoticeKind.DISCONNECT_SCHEDULED: (*COMMON, "effective_at"),
    NoticeKind.DISCONNECTED: COMMON,
    NoticeKind.ALERT_SUSPENDED: (*COMMON, "actor", "contacts"),
    NoticeKind.ALERT_WOULD_SUSPEND: (*COMMON, "actor", "incident", "not_suspended", "evidence"),
    NoticeKind.ALERT_THROTTLED: (*COMMON, "actor", "incident", "cap", "evidence"),
    NoticeKind.ALERT_GATEWAY: (*GATEWAY, "blocklists", "window", "suspects", "evidence"),
}


def languages(kind: NoticeKind, language: Language) -> tuple[Language, ...]:
    """The languages of a notice, in order: the organisation's, then English."""
    if kind in ALERTS or language == Language.EN:
        return (Language.EN,)
    return (language, Language.EN)


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


class Templates:
    """The notice templates: the operator's directory first, then the shipped ones."""

    def __init__(self, directory: str | Path = "") -> None:
        self.directory = Path(directory) if directory else None

    def source(self, kind: NoticeKind, language: Language) -> tuple[str, str]:
        """(where it came from, its text); ConfigError if it cannot be read."""
        name = f"{kind.value}.{language.value}.txt"
        try:
            if self.directory is not None and (self.directory / name).is_file():
                path = self.directory / name
                return str(path), path.read_text(encoding="utf-8")
            shipped = resources.files("ugem.core") / "templates" / "notices" / name
            return f"ugem/core/templates/notices/{name}", shipped.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError("admin.templates_dir", name, f"cannot read it: {exc}") from exc

    def render(self, kind: NoticeKind, language: Language, values: Mapping[str, str]) -> Rendered:
        where, text = self.source(kind, language)
        head, sep, body = text.partition("\n\n")
        if not head.startswith("Subject:") or "\n" in head.strip() or not sep:
            raise ConfigError(
                "admin.templates_dir", where, "expected 'Subject: ...', an empty line, the body"
            )
        try:
            subject = string.Template(head.removeprefix("Subject:").strip()).substitute(values)
            return Rendered(subject, string.Template(body).substitute(values).rstrip() + "\n")
        except (KeyError, ValueError) as exc:
            allowed = ", ".join("$" + f for f in FIELDS[kind])
            raise ConfigError(
                "admin.templates_dir", where, f"bad placeholder {exc}; allowed: {allowed}"
            ) from exc

    def check(self) -> None:
        """Render every template with sample values; ConfigError naming the first bad one."""
        for kind in NoticeKind:
            sample = {name: f"<{name}>" for name in FIELDS[kind]}
            for language in (Language.EN,) if kind in ALERTS else tuple(Language):
                self.render(kind, language, sample)


def notice_text(
    templates: Templates, kind: NoticeKind, language: Language, values: Mapping[str, str]
) -> Rendered:
    """The subject and body of a notice in its languages (see `languages`)."""
    parts = [templates.render(kind, lang, values) for lang in languages(kind, language)]
    subject = " / ".join(p.subject for p in parts)
    body = f"\n{SEPARATOR}\n\n".join(p.body for p in parts)
    return Rendered(subject, body)


def compose(
    sender: str,
    to: Sequence[Contact | str],
    text: Rendered,
    langs: Sequence[Language],
    now: float,
    hostname: str,
) -> bytes:
    """The notice as a MIME message: UTF-8 quoted-printable, CRLF line endings."""
    headers = [
        ("From", [_addr_spec(sender)]),
        ("To", _no_last_comma([w for c in to for w in _mailbox(c)])),
        ("Subject", header_words(text.subject)),
        ("Date", [format_datetime(dt.datetime.fromtimestamp(now, ALMATY))]),
        ("Message-ID", [make_msgid("notice", domain=hostname)]),
        ("Auto-Submitted", ["auto-generated"]),
        ("MIME-Version", ["1.0"]),
        ("Content-Type", ['text/plain; charset="utf-8"']),
        ("Content-Transfer-Encoding", ["quoted-printable"]),
        ("Content-Language", [", ".join(lang.value for lang in langs)]),
    ]
    head = "".join(_fold(name, words) for name, words in headers).encode("ascii")
    body = "\n".join(text.body.splitlines()) + "\n"  # any line ending becomes LF
    return head + b"\r\n" + quopri.encodestring(body.encode()).replace(b"\n", b"\r\n")


def header_words(text: str) -> list[str]:
    """`text` as header words: ASCII as it is, else RFC 2047 encoded words.

    Python's `email` folds a mixed header by putting the space between an
    ASCII word and the next one between two encoded words, where RFC 2047
    6.2 makes readers drop it; here every space stays inside an encoded word.
    """
    text = _CONTROL.sub(" ", text).strip()
    if text.isascii():
        return text.split()
    words, chunk = [], ""
    for char in text:
        if len((chunk + char).encode()) > WORD_OCTETS:
            words.append(_encoded(chunk))
            chunk = ""
        chunk += char
    return [*words, _encoded(chunk)] if chunk else words


def _encoded(chunk: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(chunk.encode()).decode("ascii") + "?="


def _fold(name: str, words: Sequence[str]) -> str:
    """One header field, folded before a word that would pass 76 characters."""
    lines, line = [], f"{name}:"
    for word in words:
        if len(line) + 1 + len(word) > LINE and line != f"{name}:":
            lines.append(line)
            line = ""
        line += " " + word
    return "\r\n".join([*lines, line]) + "\r\n"


def _mailbox(contact: Contact | str) -> list[str]:
    """The words of one recipient: `name <addr>,` (the last comma is removed by `compose`)."""
    if isinstance(contact, str):
        return [_addr_spec(contact) + ","]
    name = _CONTROL.sub(" ", contact.full_name).strip()
    if name.isascii():
        quoted = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        words = quoted.split(" ")
    else:
        words = header_words(name)
    return [*words, f"<{_addr_spec(contact.email)}>,"]


def _addr_spec(address: str) -> str:
    if not _ADDR_SPEC.fullmatch(address):
        raise UsageError(f"contacts: {address!r} cannot be written in a header")
    return address


def _no_last_comma(words: list[str]) -> list[str]:
    return [*words[:-1], words[-1].removesuffix(",")] if words else words
