"""Reading the notices the gateway mails, as a test sees them.

`read_notice(data)` checks what every notice must be on the wire (CRLF line
endings only, no line over 998 octets, ASCII headers with the Subject in RFC
2047 encoded words, UTF-8 text in quoted-printable, Date, Message-ID,
`Auto-Submitted: auto-generated`) and returns the decoded `Notice`: its
headers, subject and text, and the text split at the separator into its
language parts (`parts[0]` the organisation's language, `parts[-1]` English).
It raises AssertionError naming what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message

from ugem.core.notices import SEPARATOR

_BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")


@dataclass(frozen=True)
class Notice:
    msg: EmailMessage
    raw: Message  # the same message parsed without decoding its headers
    subject: str
    text: str  # LF line endings
    parts: list[str]

    def header(self, name: str) -> str:
        """A header decoded by RFC 2047 alone (the address parser of `email` puts a
        space between two encoded words of one display name; RFC 2047 6.2 does not)."""
        return str(make_header(decode_header(str(self.raw[name]))))


def read_notice(data: bytes) -> Notice:
    assert not _BARE.search(data), "a bare CR or LF in the notice"
    assert all(len(line) <= 998 for line in data.split(b"\r\n")), "a line over 998 octets"
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii(), "8-bit bytes in the header block"
    raw_subject = re.search(rb"^Subject: (.*(?:\r\n[ \t].*)*)", head, re.M)
    assert raw_subject is not None, "no Subject"
    msg = message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    for name in ("From", "To", "Date", "Message-ID"):
        assert msg[name], f"no {name}"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    text = msg.get_content()
    assert isinstance(text, str)
    text = text.replace("\r\n", "\n")
    parts = [p.strip() for p in text.split(SEPARATOR)]
    raw = message_from_bytes(data, policy=policy.compat32)
    return Notice(msg, raw, str(msg["Subject"]), text, parts)
