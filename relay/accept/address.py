"""SMTP paths of MAIL FROM and RCPT TO, parsed to the address mail would really go to.

`parse_mail(arg, limits)` and `parse_rcpt(arg, limits, smtputf8)` take a
command's argument (`FROM:<...> PARAMS`, `TO:<...> PARAMS`) and return a
`ParsedPath`: the `Address` (local part, canonical domain) and the ESMTP
parameters. Grammar: RFC 5321 section 4.1.2, with RFC 6531's UTF-8 when the
transaction carries SMTPUTF8. Anything this gateway refuses raises `PathError`
carrying the `Reply` to send; no other exception leaves this module.

Promises, so that every decision is made on the REAL destination:
- the domain is `ugem.core.names.canonical_domain` (lower case, IDN as punycode),
  so spellings of one domain are one domain; a domain with a trailing dot or
  an empty label (`user@dept.kz.`, `user@dept.kz..`, `user@a..kz`) is refused
  with the syntax reply (RFC 5321 4.1.2 has no such domain), never rewritten;
- keywords and parameter names are ASCII (no Unicode case folding into them);
- a source route (`<@gw,@hop:user@ext>`) is ignored, as RFC 5321 section
  4.1.1.3 says, and the path is judged on its mailbox `user@ext`;
- the gateway has no local mailboxes, so a local part that asks a downstream
  host to route further is refused with ROUTING_TRICK: the percent hack
  (`user%ext@gw`), bang paths (`ext!user@gw`, `ext!user`) and quoted local
  parts holding `@`, `%` or `!` (`"user@ext"@gw`); in MAIL as well as RCPT;
- address literals (`user@[1.2.3.4]`) are refused with ADDRESS_LITERAL;
- a local part over `max_local` octets or a domain over `max_domain` octets
  gets LOCAL_PART_TOO_LONG / DOMAIN_TOO_LONG; non-ASCII without SMTPUTF8 gets
  NEEDS_SMTPUTF8;
- `<>` (the null reverse-path) is allowed in MAIL only; it parses to None;
- `RCPT TO:<postmaster>` (no domain; RFC 5321 section 4.5.1 requires it) is
  the gateway's own postmaster and becomes `postmaster@<gateway domain>`, the
  node's hostname. The gateway keeps no mail itself: such mail is relayed to
  the next hop that `[delivery] routes` names for the node's hostname (the STS
  operators' mail server); `relay.accept.policy` refuses it with POSTMASTER_UNROUTED
  when no such route exists, because an MX lookup of our own name would point
  back at us and loop.
A quoted local part that would do as a Dot-string is unquoted (`"john"@x` is
`john@x`); other quoted local parts keep their quotes, so `str(address)` is
always a valid mailbox to hand to the next hop.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

from relay import replies
from relay.replies import Reply
from ugem.core.errors import UgemError
from ugem.core.names import canonical_domain

ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
TRICK_CHARS = frozenset("@%!")
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*\Z")
_ROUTE_HOP = re.compile(r"@[^,@:\s<>]+\Z")
POSTMASTER = "postmaster"


class PathError(UgemError):
    """A path or parameter this gateway refuses; `reply` is what to send.

    Part of the tree drawn in `ugem.core.errors`, but defined here: its `reply` is a
    `relay.replies.Reply`, a type the foundation cannot import.
    """

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


@dataclass(frozen=True)
class Address:
    local: str  # the wire form: a Dot-string, or a Quoted-string with its quotes
    domain: str  # canonical (ugem.core.names.canonical_domain)

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def is_postmaster(self) -> bool:
        return self.local.lower() == POSTMASTER


@dataclass(frozen=True)
class PathLimits:
    max_local: int = 64
    max_domain: int = 255
    gateway_domain: str = "localhost"  # where RCPT TO:<postmaster> goes


@dataclass(frozen=True)
class ParsedPath:
    address: Address | None  # None: the null reverse-path <>
    params: dict[str, str | None] = field(default_factory=dict)  # KEYWORD -> value


@dataclass(frozen=True)
class _Kind:
    keyword: str
    syntax: Reply
    null_ok: bool


_MAIL = _Kind("FROM:", replies.BAD_SENDER_SYNTAX, null_ok=True)
_RCPT = _Kind("TO:", replies.BAD_RCPT_SYNTAX, null_ok=False)


def parse_mail(arg: str, limits: PathLimits) -> ParsedPath:
    """`FROM:<path> [params]`; SMTPUTF8 among the params allows UTF-8 in the path."""
    inside, params = _split(arg, _MAIL)
    return ParsedPath(_mailbox(inside, _MAIL, limits, "SMTPUTF8" in params), params)


def parse_rcpt(arg: str, limits: PathLimits, smtputf8: bool = False) -> ParsedPath:
    """`TO:<path> [params]`; `smtputf8` is whether the transaction's MAIL carried it."""
    inside, params = _split(arg, _RCPT)
    return ParsedPath(_mailbox(inside, _RCPT, limits, smtputf8), params)


def _split(arg: str, kind: _Kind) -> tuple[str, dict[str, str | None]]:
    """The text between the angle brackets, and the parameters after them."""
    head = arg[: len(kind.keyword)]
    if not head.isascii() or head.upper() != kind.keyword:  # "\u0131".upper() is "I"
        raise PathError(kind.syntax)
    text = arg[len(kind.keyword) :].lstrip(" ")
    if not text.startswith("<"):
        raise PathError(kind.syntax)
    end = _closing_bracket(text)
    if end < 0:
        raise PathError(kind.syntax)
    rest = text[end + 1 :]
    if rest and not rest.startswith(" "):
        raise PathError(kind.syntax)
    return text[1:end], _params(rest)


def _closing_bracket(text: str) -> int:
    """Index of the '>' that closes the path, skipping quoted strings; -1 if none."""
    quoted = escaped = False
    for i, char in enumerate(text[1:], start=1):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return i
    return -1


def _params(rest: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for item in rest.split(" "):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not _KEYWORD.match(key) or (eq and not _value_ok(value)) or key.upper() in params:
            raise PathError(replies.SYNTAX_ERROR)
        params[key.upper()] = value if eq else None
    return params


def _value_ok(value: str) -> bool:
    return bool(value) and all(ord(c) > 127 or (32 < ord(c) < 127 and c != "=") for c in value)


def _mailbox(inside: str, kind: _Kind, limits: PathLimits, utf8: bool) -> Address | None:
    if not inside:
        if kind.null_ok:
            return None
        raise PathError(kind.syntax)
    if inside.startswith("@"):
        inside = _drop_route(inside, kind)
    local, rest = _local_part(inside, kind, utf8)
    if not rest:
        if kind is _RCPT and local.lower() == POSTMASTER:
            return Address(POSTMASTER, limits.gateway_domain)
        raise PathError(kind.syntax)
    if len(local.encode()) > limits.max_local:
        raise PathError(replies.LOCAL_PART_TOO_LONG)
    return Address(local, _domain(rest[1:], kind, limits, utf8))


def _drop_route(inside: str, kind: _Kind) -> str:
    """`@hop1,@hop2:mailbox` -> `mailbox` (RFC 5321: the route is ignored)."""
    route, colon, mailbox = inside.partition(":")
    if not colon or not all(_ROUTE_HOP.match(hop) for hop in route.split(",")):
        raise PathError(kind.syntax)
    return mailbox


def _local_part(text: str, kind: _Kind, utf8: bool) -> tuple[str, str]:
    """(local part in wire form, the rest starting at '@' or empty); tricks refused."""
    if text.startswith('"'):
        content, end = _quoted(text, kind, utf8)
        if TRICK_CHARS & set(content):
            raise PathError(replies.ROUTING_TRICK)
        return _wire_form(content), text[end:]
    at = text.find("@")
    local = text if at < 0 else text[:at]
    if "%" in local or "!" in local:
        raise PathError(replies.ROUTING_TRICK)
    if not _is_dot_string(local, utf8):
        raise PathError(_ascii_or(local, utf8, kind.syntax))
    return local, "" if at < 0 else text[at:]


def _quoted(text: str, kind: _Kind, utf8: bool) -> tuple[str, int]:
    """The unescaped content of the Quoted-string at the start of `text`, and its end."""
    out: list[str] = []
    i = 1
    while i < len(text):
        char = text[i]
        if char == '"':
            return "".join(out), i + 1
        if char == "\\":
            i += 1
            if i == len(text):
                break
            char = text[i]
        if not (32 <= ord(char) < 127 or (ord(char) > 127 and utf8)):
            raise PathError(_ascii_or(char, utf8, kind.syntax))
        out.append(char)
        i += 1
    raise PathError(kind.syntax)


def _wire_form(content: str) -> str:
    if _is_dot_string(content, utf8=True):
        return content
    return '"' + content.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _is_dot_string(text: str, utf8: bool) -> bool:
    atoms = text.split(".")
    return all(atoms) and all(c in ATEXT or (utf8 and ord(c) > 127) for c in text if c != ".")


def _ascii_or(text: str, utf8: bool, otherwise: Reply) -> Reply:
    """NEEDS_SMTPUTF8 when `text` fails only for being non-ASCII without SMTPUTF8."""
    return replies.NEEDS_SMTPUTF8 if not utf8 and not text.isascii() else otherwise


def _domain(text: str, kind: _Kind, limits: PathLimits, utf8: bool) -> str:
    if text.startswith("["):
        raise PathError(replies.ADDRESS_LITERAL)
    if len(text.encode()) > limits.max_domain:
        raise PathError(replies.DOMAIN_TOO_LONG)
    if not utf8 and not text.isascii():
        raise PathError(replies.NEEDS_SMTPUTF8)
    if not text or text != text.strip() or text.endswith("."):
        raise PathError(kind.syntax)  # RFC 5321 4.1.2: no trailing dot, no empty label
    try:
        return canonical_domain(text)
    except ValueError:
        raise PathError(kind.syntax) from None
