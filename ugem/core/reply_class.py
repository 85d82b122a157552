"""What a remote server's reply says about our mail, read from its text as well as its code.

A trace carries only the reply code, and the anomaly detector counts 550 as
"unknown user" and 554 as "refused as spam or by policy". Real servers are
less tidy: Gmail refuses spam with `550 5.7.1`, Microsoft with `550 5.7.708`,
Yandex rate-limits with `451 4.7.1`, and many say "user unknown" with 553.
`counted_code(code, text)` reads the enhanced status code (RFC 3463) and a
few words of the text and returns the code the detector should count the
reply as: 554 for a refusal as spam, by policy or reputation (5.7.x, or
words such as "spam", "blocked", "blacklisted", "reputation", "policy"), 550
for an unknown recipient (5.1.1, 5.1.0, 5.1.10, or "user unknown", "no such
user", "does not exist", "mailbox unavailable"), 421 for rate limiting (4.7.x
with words such as "rate", "too many", "try again later", or 4.7.28); else the
code itself. The text is read up to `MAX_TEXT` characters and never trusted
beyond that. Pure; nothing raises.
"""

from __future__ import annotations

import re

MAX_TEXT = 512
POLICY, UNKNOWN_USER, RATE_LIMITED = 554, 550, 421
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_POLICY_WORDS = re.compile(
    r"spam|blocked|block ?list|black ?list|\bdnsbl\b|\brbl\b|reputation|policy|rejected for"
    r"|spamhaus|barracuda|not accepted|abuse",
    re.IGNORECASE,
)
_UNKNOWN_WORDS = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient)|does not exist"
    r"|mailbox (unavailable|not found)|recipient (address )?rejected|invalid recipient",
    re.IGNORECASE,
)
_RATE_WORDS = re.compile(
    r"rate|too many|try again later|temporarily (deferred|rate)|throttl|limit", re.IGNORECASE
)


def counted_code(code: int, text: str) -> int:
    """The code the detector counts a reply of `code` with `text` as (see the docstring)."""
    text = text[:MAX_TEXT]
    status = _STATUS.search(text)
    subject, detail = (int(status[2]), int(status[3])) if status else (-1, -1)
    if 500 <= code < 600:
        if subject == 7 or _POLICY_WORDS.search(text):
            return POLICY
        if (subject, detail) in ((1, 1), (1, 0), (1, 10)) or _UNKNOWN_WORDS.search(text):
            return UNKNOWN_USER
        return code
    rate_status = (subject, detail) == (7, 28) or (subject == 7 and _RATE_WORDS.search(text))
    if 400 <= code < 500 and rate_status:
        return RATE_LIMITED
    return code
