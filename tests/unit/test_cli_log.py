"""`ugem log search` as an operator types it: the output, the pages, bad options named.

The index is written as a node's writer writes it, in the data dir of the
config the CLI reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import Ugem, operator, usage_error
from ugem.core.events import Accepted, Event, Outcome, Refused
from ugem.core.maillog import entry_of
from ugem.core.message_index import MessageIndex, index_path

T0 = 1_767_225_600.0  # 2026-01-01T05:00:00+05:00


@pytest.fixture
def ugem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Ugem:
    cli = operator(tmp_path, capsys, monkeypatch)
    events: list[Event] = [
        Accepted(T0, "Q1", "gov.kz", "127.0.0.2", "a@gov.kz", ("x@e.org",), 2048,
                 message_id="m1@gov.kz", helo="mx.gov.kz"),
        Outcome(T0 + 1.5, "delivered", "Q1", "gov.kz", "127.0.0.2", "x@e.org", 250, "OK",
                status="2.0.0", hop="mx.e.org:25", sender="a@gov.kz", attempt=1, delay=1.5,
                connect=0.02, transfer=0.1),
        Accepted(T0 + 60, "Q2", "gov.kz", "127.0.0.2", "a@gov.kz", ("y@e.org",), 10),
        Refused(T0 + 90, "203.0.113.9", "", "RCPT", 554, "5.7.1", "Relay access denied",
                "no open relay", "eve@x.org", ("v@gmail.com",)),
    ]  # fmt: skip
    index = MessageIndex(index_path(tmp_path / "data"))
    try:
        index.write([e for e in map(entry_of, events) if e is not None])
    finally:
        index.close()
    return cli


def test_a_message_history_for_a_person(ugem: Ugem) -> None:
    out = ugem.ok("log", "search", "--message-id", "<m1@gov.kz>")
    assert out.splitlines() == [
        "Q1  delivered  <a@gov.kz> -> x@e.org",
        "  client 127.0.0.2 (gov.kz)  message-id <m1@gov.kz>",
        "  2026-01-01T05:00:00+05:00  accepted   2048 bytes, 1 rcpts, TLS no, HELO mx.gov.kz",
        "  2026-01-01T05:00:01+05:00  delivered  x@e.org via mx.e.org:25: 250 2.0.0 OK "
        "(attempt 1; delay 1.5 s, connect 0.02 s, transfer 0.1 s)",
        "",
        "1 of 1 messages",
    ]


def test_a_refusal_and_the_next_page(ugem: Ugem) -> None:
    out = ugem.ok("log", "search", "--since", "2026-01-01", "--limit", "1")
    lines = out.splitlines()
    assert lines[0] == "(no queue id)  refused  <eve@x.org> -> v@gmail.com"
    assert lines[2].endswith("RCPT from 203.0.113.9: 554 5.7.1 Relay access denied (no open relay)")
    assert lines[-1].startswith("1 of 3 messages; next page: --cursor ")
    cursor = lines[-1].rsplit(" ", 1)[-1]
    page = json.loads(ugem.ok("log", "search", "--limit", "1", "--cursor", cursor, "--json"))
    assert [m["queue_id"] for m in page["items"]] == ["Q2"]
    assert page["total"] == 3 and page["next_cursor"]


def test_nothing_found_is_said(ugem: Ugem) -> None:
    assert ugem.ok("log", "search", "--to", "@nowhere.kz") == "no message found\n"
    assert ugem.ok("log", "search", "--until", "2025-12-31") == "no message found\n"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--since", "yesterdayish"),
        ("--until", "2026-02-30"),
        ("--limit", "0"),
        ("--cursor", "bm90IGEgY3Vyc29y"),
    ],
)
def test_bad_input_names_the_option(ugem: Ugem, option: str, value: str) -> None:
    result = ugem("log", "search", option, value)
    usage_error(result, option)
    if option == "--since":
        assert "'yesterdayish' is not a time; expected RFC 3339" in result.err


def test_an_index_turned_off_says_how_to_turn_it_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = operator(tmp_path, capsys, monkeypatch, "[log]\nindex_days = 0\n")
    result = cli("log", "search", "--queue-id", "Q1")
    assert result.code == 1 and "index_days" in result.err
