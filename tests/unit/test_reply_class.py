"""ugem.core.reply_class: remote replies are classified by what their code and text say.

Every entry of tests/unit/data/reply_corpus.toml (real replies of Gmail, Microsoft,
Yahoo, Mail.ru, Yandex, Postfix, Exim and the block lists, each with its source) is
classified as it says; the order of precedence holds; the index of words finds what
searching every regex in turn finds (for the packaged table and for awkward regexes);
an operator's patterns file replaces the packaged one and a bad one is refused naming
the file and the rule; no code and no text makes classification raise; and
`counted_code`, what the anomaly detector counts, derives from the class.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ugem.core.errors import ConfigError
from ugem.core.events import Outcome, event_of_record, trace_record
from ugem.core.reply_class import (
    AUTH_FAILURE,
    BLOCKLISTED,
    COUNTED_POLICY,
    COUNTED_RATE_LIMITED,
    COUNTED_UNKNOWN_USER,
    DEFAULT_PATTERNS,
    DELIVERED,
    MAX_TEXT,
    OTHER,
    POLICY,
    RATE_LIMITED,
    RULE_CLASSES,
    SPAM_CONTENT,
    UNKNOWN_USER,
    Patterns,
    ReplyClass,
    classify,
    counted_code,
    load_patterns,
)

ROOT = Path(__file__).resolve().parents[2]
CORPUS: list[dict[str, Any]] = tomllib.loads(
    (Path(__file__).parent / "data" / "reply_corpus.toml").read_text(encoding="utf-8")
)["reply"]
CLASSES = {*RULE_CLASSES, DELIVERED}


def _id(entry: dict[str, Any]) -> str:
    return f"{entry['code']}-{' '.join(entry['text'].split())[:40]}"


# -- the corpus of real replies -----------------------------------------------------------


@pytest.mark.parametrize("entry", CORPUS, ids=[_id(entry) for entry in CORPUS])
def test_a_real_reply_gets_its_class(entry: dict[str, Any]) -> None:
    code, text = entry["code"], entry["text"]
    expected = ReplyClass(entry["class"], entry.get("blocklist", ""), 400 <= code < 500)
    assert classify(code, text) == expected


def test_the_corpus_is_large_sourced_and_covers_every_class() -> None:
    assert len(CORPUS) >= 40
    for entry in CORPUS:
        assert set(entry) <= {"code", "text", "class", "blocklist", "source", "note"}
        assert entry["source"].startswith(("https://", "http://")), entry
        assert entry["class"] in CLASSES
    assert {entry["class"] for entry in CORPUS} == CLASSES
    assert {entry.get("blocklist", "") for entry in CORPUS} >= {
        "Spamhaus",
        "Barracuda",
        "SpamCop",
        "Microsoft S3150",
    }


# -- the order of precedence ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        # 1. an exact status beats any words
        (550, "5.1.1 this message looks like spam", UNKNOWN_USER),
        (421, "4.7.28 unusual rate of unsolicited mail from your SPF domain", RATE_LIMITED),
        (550, "5.7.26 blocked by our policy", AUTH_FAILURE),
        # 2. a named list beats the generic words: policy, spam, unknown user
        (554, "5.7.1 Rejected by policy: client blocked using zen.spamhaus.org", BLOCKLISTED),
        # 3. words in the file's order: rate limits before spam, users before policy
        (421, "4.7.0 Unusual rate of unsolicited mail, temporarily blocked", RATE_LIMITED),
        (550, "5.7.1 No such user!", UNKNOWN_USER),
        (550, "5.7.1 spam, and against our policy", SPAM_CONTENT),
        # 4. a generic status says what no words said
        (550, "5.7.1 Go away", POLICY),
        (550, "#5.1.0 Address rejected.", UNKNOWN_USER),
        # 5. else other
        (550, "Go away", OTHER),
        (451, "4.3.0 Temporary local problem", OTHER),
    ],
)
def test_precedence(code: int, text: str, expected: str) -> None:
    assert classify(code, text).cls == expected


def test_a_named_list_is_reported() -> None:
    reply = classify(554, "5.7.1 Client host [192.0.2.1] blocked using zen.spamhaus.org")
    assert reply == ReplyClass(BLOCKLISTED, "Spamhaus", False)


def test_a_status_counts_only_when_its_class_is_the_codes() -> None:
    assert classify(452, "4.2.2 full").cls == "mailbox-full"
    assert classify(550, "4.2.2 full").cls == OTHER  # no status; "full" alone says nothing
    assert classify(550, "from [1.5.1.1] go away").cls == OTHER  # part of an IP address
    assert classify(550, "Mailbox unknown\n5.1.1 go away").cls == UNKNOWN_USER  # not first


def test_the_code_alone_decides_outside_4xx_and_5xx() -> None:
    assert classify(250, "2.0.0 OK spam") == ReplyClass(DELIVERED, "", False)
    assert classify(354, "no such user") == ReplyClass(OTHER, "", False)
    assert classify(0, "5.1.1 no such user") == ReplyClass(OTHER, "", False)
    assert classify(-550, "5.1.1 no such user") == ReplyClass(OTHER, "", False)


def test_only_the_first_characters_are_read() -> None:
    assert classify(550, "x" * MAX_TEXT + " spam").cls == OTHER
    assert classify(550, "spam " + "x" * 10**6).cls == SPAM_CONTENT


_FRAGMENTS = st.sampled_from(
    ["5.1.1", "4.7.28", "5.7.*", "2.3.4", "spam", "(S3150)", "DMARC", "TLS", "\n", " ", "é"]
)


@settings(max_examples=500, derandomize=True, deadline=None)
@given(
    st.integers(),
    st.one_of(st.text(max_size=2000), st.lists(_FRAGMENTS | st.text(max_size=8)).map("".join)),
)
def test_any_code_and_any_text_get_a_class(code: int, text: str) -> None:
    reply = classify(code, text)
    assert reply.cls in CLASSES
    assert isinstance(reply.blocklist, str)
    assert reply.temporary == (400 <= code < 500)
    assert reply.cls != DELIVERED or 200 <= code < 300


# -- the word index finds what searching every regex finds -----------------------------------


def _searched(patterns: Patterns, text: str) -> ReplyClass:
    """A 5xx without a status, classified the slow way: every text rule's regex in order."""
    low = " ".join(text[:MAX_TEXT].lower().split())
    for rule in patterns.text_rules:
        assert rule.regex is not None
        if rule.regex.search(low):
            return ReplyClass(rule.cls, rule.blocklist, False)
    return ReplyClass(OTHER, "", False)


def _vocabulary(patterns: Patterns) -> list[str]:
    """The words and the leading phrases of a table's regexes, some in capitals, and gaps."""
    regexes = " ".join(rule.regex.pattern for rule in patterns.text_rules if rule.regex)
    words = set(re.findall(r"[a-z0-9]+", regexes)) - {"b", "s", "n", "d", "w"}  # not escapes
    leads = {alt.lead for alts in patterns.by_word.values() for alt in alts}
    phrases = sorted(words | leads)
    gaps = [" ", "-", ".", "'", "\u2019", "(", ")", "@", "_", "\n", "é", "ß", "x", "ж"]
    gaps += ["\u212a", "\u0130", "\u0307", "\xa0"]  # Kelvin K, dotted I, a combining dot
    return phrases + [phrase.upper() for phrase in phrases[::5]] + gaps * 8


def _texts(patterns: Patterns) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(_vocabulary(patterns)), max_size=12).map("".join)


@settings(max_examples=1000, derandomize=True, deadline=None)
@given(_texts(DEFAULT_PATTERNS))
def test_the_packaged_words_find_what_every_regex_finds(text: str) -> None:
    assume(not re.search(r"[45]\.\d", text))  # no status: the words alone decide
    assert classify(550, text) == _searched(DEFAULT_PATTERNS, text)


_TRICKY = [
    r"^foo",  # anchored: no lead to look for
    r"(?<!x)bar",  # a lookbehind first
    r"\bba+z\b|qu?ux",  # repeated and optional letters end the lead
    r"[ab]c|\bdd\b",  # a class first, then a whole word
    r"(e)\1",  # a reference: the regex is kept whole
    r"x{2}y|\(s1\)|\bt\.u\b",  # a counted letter; words bounded by punctuation
    r"(?:p|q)r|foo bar\b|\bfoo-baz",  # a group first; words at the start of a phrase
    r"(?x) zz \b",  # a global flag: kept whole
]


@pytest.fixture(scope="module")
def tricky(tmp_path_factory: pytest.TempPathFactory) -> Patterns:
    path = tmp_path_factory.mktemp("tricky") / "tricky.toml"
    rules = "".join(
        f"[[rule]]\nclass = \"policy\"\nregex = '''{regex}'''\nsource = \"rule {n}\"\n"
        for n, regex in enumerate(_TRICKY)
    )
    path.write_text(rules.replace('"policy"', '"blocklisted"\nblocklist = "B"', 1))
    return load_patterns(path)


@settings(max_examples=1000, derandomize=True, deadline=None)
@given(
    st.lists(
        st.sampled_from(["foo", "bar", "baaz", "bz", "qux", "quux", "ac", "dd", "ee", "e", "x"])
        | st.sampled_from(["xxy", "(s1)", "t.u", "pr", "foo bar", "foo-baz", "zz", "y", "s1"])
        | st.sampled_from([" ", "-", ".", "(", ")", "é", "_", "\n", "B", "F", "ж", "\u212a"]),
        max_size=10,
    ).map("".join)
)
def test_any_regex_finds_through_the_index_what_it_finds_alone(tricky: Patterns, text: str) -> None:
    assert classify(550, text, tricky) == _searched(tricky, text)


# -- an operator's patterns file -----------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "patterns.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_override_file_replaces_the_packaged_table(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[[rule]]
class = "blocklisted"
regex = 'listed at ourbl'
blocklist = "OurBL"
source = "our own list"

[[rule]]
class = "policy"
status = ["5.1.*"]
source = "we call every address refusal policy"
""",
    )
    patterns = load_patterns(path)
    assert patterns.where == str(path)
    ours = ReplyClass(BLOCKLISTED, "OurBL", False)
    assert classify(550, "5.7.1 listed at OurBL", patterns) == ours
    assert classify(550, "5.1.1 no such user", patterns).cls == POLICY
    assert classify(550, "5.7.1 spam", patterns).cls == OTHER  # nothing of the packaged table
    assert classify(550, "5.7.1 spam").cls == SPAM_CONTENT  # the packaged table is untouched


def test_the_packaged_table_loads_and_ships_with_the_package() -> None:
    assert load_patterns().where == "ugem/core/reply_patterns.toml"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "reply_patterns.toml" in project["tool"]["setuptools"]["package-data"]["ugem.core"]


_RULE = 'class = "policy"\nregex = "x"\nsource = "s"\n'
_BAD_REGEX = 'class = "policy"\nregex = "("\nsource = "s"\n'


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[[rule]\n", ["cannot read it as TOML"]),
        ("", ["expected [[rule]] tables only"]),
        (f"version = 2\n[[rule]]\n{_RULE}", ["expected [[rule]] tables only"]),
        (f"[[rule]]\n{_RULE}[[rule]]\n{_BAD_REGEX}", ["rule 2 regex", "'('"]),
        (f"[[rule]]\n{_RULE.replace('policy', 'spammy')}", ["rule 1 class", "spammy"]),
        (f'[[rule]]\n{_RULE}status = ["5.7"]\n', ["rule 1 status", "'5.7'"]),
        (f'[[rule]]\n{_RULE}status = ["2.0.0"]\n', ["rule 1 status"]),
        (f'[[rule]]\n{_RULE}status = "5.7.1"\n', ["rule 1 status"]),
        ('[[rule]]\nclass = "policy"\nregex = "x"\n', ["rule 1 source"]),
        (f"[[rule]]\n{_RULE}comment = 1\n", ["rule 1", "comment"]),
        ('[[rule]]\nclass = "policy"\nsource = "s"\n', ["rule 1", "a status, a regex or both"]),
        (f'[[rule]]\n{_RULE}blocklist = "X"\n', ["rule 1 blocklist", "only for class"]),
        ('[[rule]]\nclass = "policy"\nregex = "No such"\nsource = "s"\n', ["lower case", "'N'"]),
    ],
)
def test_a_bad_override_file_is_refused_naming_the_file_and_the_rule(
    tmp_path: Path, text: str, names: list[str]
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as refused:
        load_patterns(path)
    for name in [str(path), *names]:
        assert name in str(refused.value)


def test_a_missing_override_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        load_patterns(tmp_path / "absent.toml")


# -- what the anomaly detector counts -------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text", "counted"),
    [
        # refusals as spam or by policy, whatever the code
        (550, "5.7.1 [1.2.3.4] Our system has detected that this message is likely spam", 554),
        (
            550,
            "5.7.708 Service unavailable. Access denied, traffic not accepted from this IP",
            COUNTED_POLICY,
        ),
        (554, "5.7.1 Service unavailable; Client host blocked using zen.spamhaus.org", 554),
        (553, "Message rejected for policy reasons", COUNTED_POLICY),
        (550, "Your IP is listed on a blocklist (RBL)", COUNTED_POLICY),
        (550, "5.7.26 This mail is unauthenticated", COUNTED_POLICY),
        # unknown users, whatever the code
        (550, "5.1.1 The email account that you tried to reach does not exist", 550),
        (553, "sorry, no such user here", COUNTED_UNKNOWN_USER),
        (551, "5.1.10 Recipient not found", COUNTED_UNKNOWN_USER),
        (550, "Requested action not taken: mailbox unavailable", COUNTED_UNKNOWN_USER),
        (550, "5.7.1 No such user!", COUNTED_UNKNOWN_USER),
        # rate limiting
        (451, "4.7.1 Too many messages from your IP, try again later", COUNTED_RATE_LIMITED),
        (421, "4.7.28 Our system has detected an unusual rate of unsolicited mail", 421),
        # what says nothing more stays what its code says
        (552, "5.2.2 Mailbox full", 552),
        (451, "4.3.0 Temporary local problem", 451),
        (450, "4.2.0 Greylisted, please retry", 450),
        (250, "2.0.0 OK queued as 12345", 250),
        (554, "", 554),
        (550, "", 550),
    ],
)
def test_a_reply_is_counted_by_what_it_says(code: int, text: str, counted: int) -> None:
    assert counted_code(code, text) == counted


def test_counting_reads_only_the_first_characters() -> None:
    assert counted_code(550, "x" * MAX_TEXT + " spam") == 550
    assert counted_code(550, "spam " + "x" * 10**6) == COUNTED_POLICY


@given(st.integers(min_value=200, max_value=599), st.text(max_size=2000))
def test_any_reply_gets_a_code_of_its_kind(code: int, text: str) -> None:
    counted = counted_code(code, text)
    assert counted == code or counted // 100 == code // 100  # never a 4xx made a 5xx


def test_the_counted_code_travels_in_the_traffic_record_only_when_it_differs() -> None:
    told = Outcome(1.0, "bounced", "q", "x.gov.kz", "127.0.0.2", "a@b.kz", 550, "5.7.1 spam", 554)
    record = trace_record(told)
    assert record is not None and record["code"] == 550 and record["counted"] == 554
    assert event_of_record(record) == Outcome(
        1.0, "bounced", "", "x.gov.kz", "127.0.0.2", "a@b.kz", 550, counted=554
    )
    plain = Outcome(1.0, "bounced", "q", "x.gov.kz", "127.0.0.2", "a@b.kz", 550, "5.1.1", 550)
    record = trace_record(plain)
    assert record is not None and "counted" not in record
