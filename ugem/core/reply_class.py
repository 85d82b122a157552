"""What a remote server's reply says about our mail: its class, read from its code and text.

`classify(code, text)` gives every delivery reply a `ReplyClass`: `cls`, one of
the named classes below (DELIVERED for 2xx; for 4xx and 5xx what the reply says:
UNKNOWN_USER, MAILBOX_FULL, SPAM_CONTENT, BLOCKLISTED, RATE_LIMITED, AUTH_FAILURE
for SPF, DKIM or DMARC, POLICY, TLS, else OTHER; any other code is OTHER),
`blocklist`, the name of the list when the text names one ("Spamhaus",
"Microsoft S3150", ...) else "", and `temporary`, true for a 4xx.

The patterns are data: `reply_patterns.toml` in this package, each rule a class,
enhanced statuses (RFC 3463, RFC 5248), a regex, a list's name and its source,
read and compiled once at import (`load_patterns()`; an operator's file replaces
it as a whole: `load_patterns(path)`, passed as `classify(..., patterns=)`).
Precedence, the first rule that matches deciding:

1. an exact enhanced status rule ("5.1.1", "4.7.28", "5.7.26"): a specific
   status beats any words. The status is the first X.Y.Z of the text whose class
   digit is the code's ("550-5.7.1" counts, the "2.3.4" of an IP address does not);
2. a rule that names a block list (Spamhaus, Barracuda, S3150, ...): a named list
   beats the generic words, "policy" among them;
3. word rules, in the file's order: rate-limited, tls, auth-failure, mailbox-full,
   unknown-user, blocklisted, spam-content, policy;
4. a generic status ("5.7.*" policy, "5.1.*" unknown user): what the status says
   when no words said more;
5. else OTHER.

The text is read up to `MAX_TEXT` characters and never trusted beyond that, in
lower case with runs of white space made one space (the regexes are written in
lower case; `load_patterns` refuses capitals). Speed: each regex is split into
its top-level alternatives, and an alternative whose every match holds a whole
word (`\\bspam\\b`, `\\bno such user`, an ASCII word) is tried only when the
reply's text has that word, so a reply costs a dictionary lookup per word and
the few regexes it could match, whatever the size of the table; an alternative
without such a word is looked for (its leading literal) in every text.
Classification is pure and never raises on any code or text.

`counted_as(code, cls)` derives from the class the code the anomaly detector
counts the reply as: 554 for a 5xx refusal (spam, block list, policy,
authentication, TLS, rate), 550 for a 5xx unknown user, 421 for a 4xx rate
limit, else the code itself (`counted_code(code, text)` classifies first).
`load_patterns` raises ConfigError naming the file, the rule and the field when
a file cannot be read or a rule is malformed; the regexes are trusted
configuration (a pathological one is slow, not unsafe). `configured_patterns(path)`
is the table of `[reputation] reply_patterns` (PATTERNS_KEY; "" the packaged
one), read once by whoever classifies (the node at start, `ugem config check`)
and passed on: its ConfigError names that key, the file and the file's problem.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple

from ugem.core.errors import ConfigError

MAX_TEXT = 512
PATTERNS_FILE = "reply_patterns.toml"
PATTERNS_KEY = "reputation.reply_patterns"  # the config key of an operator's table

DELIVERED = "delivered"
UNKNOWN_USER = "unknown-user"
MAILBOX_FULL = "mailbox-full"
SPAM_CONTENT = "spam-content"
BLOCKLISTED = "blocklisted"
RATE_LIMITED = "rate-limited"
AUTH_FAILURE = "auth-failure"
POLICY = "policy"
TLS = "tls"
OTHER = "other"
RULE_CLASSES = (
    UNKNOWN_USER,
    MAILBOX_FULL,
    SPAM_CONTENT,
    BLOCKLISTED,
    RATE_LIMITED,
    AUTH_FAILURE,
    POLICY,
    TLS,
    OTHER,
)

# The codes the detector counts a reply as (`counted_code`).
COUNTED_POLICY, COUNTED_UNKNOWN_USER, COUNTED_RATE_LIMITED = 554, 550, 421
_REFUSALS = frozenset({SPAM_CONTENT, BLOCKLISTED, POLICY, AUTH_FAILURE, TLS, RATE_LIMITED})

# An enhanced status of each class, not part of a longer dotted number ("4.16.55.1").
_STATUS = {kind: re.compile(rf"{kind}\.\d{{1,3}}\.\d{{1,3}}(?!\d|\.\d)") for kind in (4, 5)}
_STATUS_KEY = re.compile(r"[45]\.\d{1,3}\.(?:\d{1,3}|\*)")
_FIELDS = frozenset({"class", "status", "regex", "blocklist", "source"})
# Text split into the words `\b` sees: every ASCII character but a letter, a digit or "_"
# is a gap (a character beyond ASCII becomes "?" first: see `_words`).
_GAPS = str.maketrans({c: " " for c in map(chr, range(128)) if not (c.isalnum() or c == "_")})
_META = frozenset(".^$*+?{}[]()|")
_NOT_SPLIT = re.compile(r"\\[1-9]|\(\?P=|\(\?\(|^\(\?[a-zA-Z-]+\)")


class ReplyClass(NamedTuple):
    """One reply's class: `cls` (a named class), the `blocklist` named, `temporary` (4xx)."""

    cls: str
    blocklist: str
    temporary: bool


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table: a class, and the statuses and regex that say it."""

    cls: str
    statuses: tuple[str, ...]
    regex: re.Pattern[str] | None
    blocklist: str
    source: str

    def says(self, text: str) -> bool:
        return self.regex is None or self.regex.search(text) is not None


@dataclass(frozen=True, slots=True, eq=False)  # equal only to itself: cheap to hash
class Alternative:
    """One top-level alternative of a text rule's regex, and what every match holds."""

    order: int  # its rule's place among the text rules, in precedence
    regex: re.Pattern[str]
    lead: str  # every match starts with it ("": unknown)
    word: str  # a whole word every match holds ("": none known)
    whole: bool  # the alternative is `\bword\b`: in ASCII text, the word alone is a match

    def matches(self, text: str, ascii_text: bool) -> bool:
        """Whether it matches `text`, once the text's words made it a candidate."""
        if self.whole and ascii_text:
            return True
        start = text.find(self.lead)
        return start >= 0 and self.regex.search(text, start) is not None


@dataclass(frozen=True, slots=True)
class Patterns:
    """A compiled table, its rules grouped by the precedence they apply with."""

    where: str
    exact: Mapping[str, tuple[Rule, ...]]  # "5.1.1" -> rules
    text_rules: tuple[Rule, ...]  # rules naming a list, then word rules
    by_word: Mapping[str, tuple[Alternative, ...]]  # their alternatives by word
    scanned: tuple[Alternative, ...]  # their alternatives without a word
    subject: Mapping[str, tuple[Rule, ...]]  # "5.7" -> rules of "5.7.*"

    def decide(self, status: str, text: str) -> Rule | None:
        """The first rule that matches, in the order of precedence; None if none does."""
        for rule in self.exact.get(status, ()):
            if rule.says(text):
                return rule
        found = self._by_text(text)
        if found is not None:
            return found
        for rule in self.subject.get(status.rpartition(".")[0], ()):
            if rule.says(text):
                return rule
        return None

    def _by_text(self, text: str) -> Rule | None:
        """The first text rule with an alternative that matches `text`."""
        candidates = {alt for word in _words(text) for alt in self.by_word.get(word, ())}
        candidates.update(alt for alt in self.scanned if alt.lead in text)
        ascii_text = text.isascii()
        for alt in sorted(candidates, key=_ORDER):
            if alt.matches(text, ascii_text):
                return self.text_rules[alt.order]
        return None


_ORDER = attrgetter("order")


def classify(code: int, text: str, patterns: Patterns | None = None) -> ReplyClass:
    """The class of a reply of `code` with `text` (see the module docstring); never raises."""
    if not isinstance(code, int) or not isinstance(text, str):
        return ReplyClass(OTHER, "", False)
    if 200 <= code < 300:
        return ReplyClass(DELIVERED, "", False)
    if not 400 <= code < 600:
        return ReplyClass(OTHER, "", False)
    text = " ".join(text[:MAX_TEXT].lower().split())
    rule = (patterns or DEFAULT_PATTERNS).decide(_status(text, code // 100), text)
    if rule is None:
        return ReplyClass(OTHER, "", code < 500)
    return ReplyClass(rule.cls, rule.blocklist, code < 500)


def counted_code(code: int, text: str, patterns: Patterns | None = None) -> int:
    """The code the detector counts a reply of `code` with `text` as (see the docstring)."""
    return counted_as(code, classify(code, text, patterns).cls)


def counted_as(code: int, cls: str) -> int:
    """The code the detector counts a reply of `code` and class `cls` as."""
    if 500 <= code < 600:
        if cls in _REFUSALS:
            return COUNTED_POLICY
        if cls == UNKNOWN_USER:
            return COUNTED_UNKNOWN_USER
    elif 400 <= code < 500 and cls == RATE_LIMITED:
        return COUNTED_RATE_LIMITED
    return code


def _status(text: str, kind: int) -> str:
    """The first enhanced status in `text` of class `kind` ("5.7.1"), or ""."""
    for found in _STATUS[kind].finditer(text):
        before = text[found.start() - 1 : found.start()]
        if not (before == "." or _is_word(before)):
            return found[0]
    return ""


def _words(text: str) -> list[str]:
    """The ASCII words of `text`, each bounded by gaps: all those `\\b` bounds, and maybe more.

    A character beyond ASCII becomes a gap: a word `\\b` sees beside it (a letter, then
    "é") is still one here, and any extra word only makes a candidate the regex refuses.
    """
    if not text.isascii():
        text = text.encode("ascii", "replace").decode("ascii")
    return text.translate(_GAPS).split()


def _is_word(char: str) -> bool:
    """Whether `char` is a word character for `\\b` (a letter, a digit or "_")."""
    return char.isalnum() or char == "_"


# -- loading and compiling a table ---------------------------------------------------------


def configured_patterns(path: str) -> Patterns:
    """The table `[reputation] reply_patterns` names ("": the packaged one).

    ConfigError naming PATTERNS_KEY, the file and what is wrong in it.
    """
    if not path:
        return DEFAULT_PATTERNS
    try:
        return load_patterns(Path(path))
    except ConfigError as exc:
        detail = exc.key.removeprefix(path).removeprefix(":").strip()
        problem = f"{detail}: {exc.value!r} is not valid; {exc.allowed}" if detail else exc.allowed
        raise ConfigError(PATTERNS_KEY, path, problem) from exc


def load_patterns(path: Path | None = None) -> Patterns:
    """The table in `path`, or the packaged one; ConfigError naming the file and the rule."""
    where = str(path) if path is not None else f"ugem/core/{PATTERNS_FILE}"
    try:
        if path is None:
            raw = resources.files("ugem.core").joinpath(PATTERNS_FILE).read_bytes()
        else:
            raw = path.read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(where, Path(where).name, f"cannot read it as TOML: {exc}") from exc
    return _compile(where, data)


def _compile(where: str, data: Mapping[str, object]) -> Patterns:
    """Group the rules of a parsed file by precedence (see `Patterns.decide`)."""
    rows = data.get("rule")
    if set(data) != {"rule"} or not isinstance(rows, list) or not rows:
        raise ConfigError(where, sorted(data), "expected [[rule]] tables only, at least one")
    rules = [_rule(f"{where}: rule {number}", row) for number, row in enumerate(rows, start=1)]
    text_rules = [rule for rule in rules if not rule.statuses and rule.blocklist]
    text_rules += [rule for rule in rules if not rule.statuses and not rule.blocklist]
    alternatives = [alt for order, rule in enumerate(text_rules) for alt in _split(order, rule)]
    by_word: dict[str, list[Alternative]] = {}
    for alt in alternatives:
        if alt.word:
            by_word.setdefault(alt.word, []).append(alt)
    return Patterns(
        where,
        _by_status(rules, exact=True),
        tuple(text_rules),
        {word: tuple(alts) for word, alts in by_word.items()},
        tuple(alt for alt in alternatives if not alt.word),
        _by_status(rules, exact=False),
    )


def _by_status(rules: Iterable[Rule], *, exact: bool) -> dict[str, tuple[Rule, ...]]:
    """Rules by exact status ("5.1.1"), or by class and subject ("5.7" for "5.7.*")."""
    table: dict[str, list[Rule]] = {}
    for rule in rules:
        for status in rule.statuses:
            if status.endswith(".*") != exact:
                table.setdefault(status.removesuffix(".*"), []).append(rule)
    return {key: tuple(found) for key, found in table.items()}


def _rule(where: str, row: object) -> Rule:
    """One [[rule]] table checked and compiled; ConfigError naming the field at fault."""
    if not isinstance(row, dict):
        raise ConfigError(where, row, "expected a [[rule]] table")
    unknown = sorted(set(row) - _FIELDS)
    if unknown:
        raise ConfigError(where, unknown, f"unknown fields; allowed: {', '.join(sorted(_FIELDS))}")
    cls = _text(where, row, "class")
    if cls not in RULE_CLASSES:
        raise ConfigError(f"{where} class", cls, f"allowed: {', '.join(RULE_CLASSES)}")
    source = _text(where, row, "source")
    statuses = _statuses(where, row.get("status", []))
    regex = _regex(where, row.get("regex"))
    blocklist = _text(where, row, "blocklist", "")
    if not statuses and regex is None:
        raise ConfigError(where, sorted(row), "a rule needs a status, a regex or both")
    if blocklist and cls != BLOCKLISTED:
        raise ConfigError(f"{where} blocklist", blocklist, f"only for class {BLOCKLISTED}")
    return Rule(cls, statuses, regex, blocklist, source)


def _text(where: str, row: Mapping[str, object], field: str, default: str | None = None) -> str:
    """A string field; required unless it has a `default`."""
    value = row.get(field, default)
    if not isinstance(value, str) or (default is None and not value.strip()):
        raise ConfigError(f"{where} {field}", value, "expected a non-empty string")
    return value


def _statuses(where: str, value: object) -> tuple[str, ...]:
    """The `status` list: each "4.7.28" or "5.7.*"."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where} status", value, 'expected a list such as ["5.1.1", "5.7.*"]')
    for item in value:
        if not _STATUS_KEY.fullmatch(item):
            raise ConfigError(f"{where} status", item, 'expected "4.7.28" or "5.7.*", class 4 or 5')
    return tuple(value)


def _regex(where: str, value: object) -> re.Pattern[str] | None:
    """The `regex`, compiled; None when the rule has none."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} regex", value, "expected a non-empty string")
    capital = _capital(value)
    if capital:
        allowed = f"write it in lower case ({capital!r}): it is searched in the lower-cased text"
        raise ConfigError(f"{where} regex", value, allowed)
    try:
        return re.compile(value)
    except re.error as exc:
        raise ConfigError(f"{where} regex", value, f"not a regular expression: {exc}") from exc


def _capital(pattern: str) -> str:
    """The first capital letter of `pattern` outside escapes and group names, or ""."""
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            i = pattern.find("}", i) + 1 if pattern.startswith("\\N{", i) else i + 2
        elif pattern.startswith(("(?P<", "(?P="), i):
            i = pattern.find(">" if pattern[i + 3] == "<" else ")", i) + 1
        elif pattern[i].isupper():
            return pattern[i]
        else:
            i += 1
        if i <= 0:
            return ""
    return ""


# -- what every match of an alternative holds ----------------------------------------------


def _split(order: int, rule: Rule) -> list[Alternative]:
    """A text rule's regex as its top-level alternatives (one when it cannot be split)."""
    assert rule.regex is not None  # a text rule has a regex (`_rule`)
    pattern = rule.regex.pattern
    if not _NOT_SPLIT.search(pattern):
        try:
            return [_alternative(order, part) for part in _top_level(pattern)]
        except re.error:
            pass  # an alternative that does not stand alone: keep the regex whole
    return [Alternative(order, rule.regex, "", "", False)]


def _alternative(order: int, source: str) -> Alternative:
    """One alternative compiled, with the literal it starts with and the word it holds."""
    lead, left, right = _lead(source)
    word = _word(lead, left, right)
    if not word.isascii():
        word = ""  # `_words` sees ASCII words only: look for its lead instead
    whole = bool(word) and source == f"\\b{word}\\b"
    return Alternative(order, re.compile(source), lead, word, whole)


def _top_level(pattern: str) -> list[str]:
    """`pattern` cut at each `|` outside groups, classes and escapes."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i = _class_end(pattern, i)
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    parts.append(pattern[start:])
    return parts


def _class_end(pattern: str, i: int) -> int:
    """The index just after the character class that opens at `pattern[i]`."""
    i += 1
    i += pattern.startswith("^", i)
    i += pattern.startswith("]", i)
    while i < len(pattern) and pattern[i] != "]":
        i += 2 if pattern[i] == "\\" else 1
    return i + 1


def _lead(source: str) -> tuple[str, bool, bool]:
    """The literal every match of `source` starts with; whether `\\b` opens and ends it."""
    left = source.startswith("\\b")
    i = 2 if left else 0
    chars: list[str] = []
    while i < len(source):
        char, step = source[i], 1
        if char == "\\":
            char, step = source[i + 1 : i + 2], 2
            if char == "b":
                return "".join(chars), left, True
            if not char or _is_word(char):
                break  # a class (\d \S), a reference: not a literal
        elif char in _META:
            break
        after = source[i + step : i + step + 1]
        if after in ("?", "*", "{"):
            break  # optional: not in every match
        chars.append(char)
        i += step
        if after == "+":
            break
    return "".join(chars), left, False


def _word(lead: str, left: bool, right: bool) -> str:
    """The first whole word of `lead` (bounded on both sides in every match), or ""."""
    start = 0
    while start < len(lead) and not _is_word(lead[start]):
        start += 1
    end = start
    while end < len(lead) and _is_word(lead[end]):
        end += 1
    if start == end or (start == 0 and not left) or (end == len(lead) and not right):
        return ""
    return lead[start:end]


DEFAULT_PATTERNS = load_patterns()
