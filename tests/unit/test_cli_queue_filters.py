"""`ugem queue summary|list|<action> --filter...|flush`, as a postmaster types them.

The spool (two workers' files) is filled beforehand as a node fills it, with
mail received minutes to hours ago by the wall clock the command reads.
"""

from __future__ import annotations

import json
import time

from relay.queue.message import QueuedMessage, QueueState
from tests.support.cli import usage_error
from tests.unit.test_cli_queue import QueueUgem, ugem
from tests.unit.test_spool import message

__all__ = ["ugem"]  # the fixture


def aged(
    n: int, domain: str, minutes: float, state: QueueState = QueueState.DEFERRED
) -> QueuedMessage:
    msg = message(n)
    msg.rcpts = [f"r{n}@{domain}", f"s{n}@{domain}"]  # one message, two recipients there
    msg.received_at, msg.state = time.time() - minutes * 60, state
    return msg


def fill(ugem: QueueUgem) -> None:
    ugem.fill(aged(1, "mail.ru", 2), aged(2, "mail.ru", 30), aged(3, "gmail.com", 400))
    bounce = aged(4, "gmail.com", 7, QueueState.ACTIVE)
    bounce.sender, bounce.connection = "", ""
    ugem.fill(bounce, aged(5, "yandex.kz", 90), worker=1)


def listed(ugem: QueueUgem) -> dict[str, dict[str, object]]:
    """Every worker's queued mail, by id, as `queue list --json` gives it."""
    return {m["id"]: m for m in json.loads(ugem.ok("queue", "list", "--json"))}


def test_summary_prints_qshape_s_table(ugem: QueueUgem) -> None:
    fill(ugem)
    lines = ugem.ok("queue", "summary", "--top", "2").splitlines()
    assert lines[0].split() == ["DESTINATION", "TOTAL", "0-5", "5-10", "10-20", "20-40",
                                "40-80", "80-160", "160-320", "320+"]  # fmt: skip
    assert lines[1].split() == ["TOTAL", "5", "1", "1", "0", "1", "0", "1", "0", "1"]
    assert lines[2].split() == ["gmail.com", "2", "0", "1", "0", "0", "0", "0", "0", "1"]
    assert lines[3].split() == ["mail.ru", "2", "1", "0", "0", "1", "0", "0", "0", "0"]
    assert lines[4].split() == ["(other)", "1", "0", "0", "0", "0", "0", "1", "0", "0"]
    assert lines[5].startswith("(other: 1 more destinations")
    shaped = json.loads(ugem.ok("queue", "summary", "--by", "connection", "--json"))
    assert shaped["total"]["total"] == 5 and shaped["other"] is None
    assert {r["key"]: r["total"] for r in shaped["rows"]} == {"minfin.gov.kz": 4, "(inbound)": 1}
    assert shaped["buckets"][0] == "0-5" and len(shaped["rows"][0]["counts"]) == 8


def test_list_filters(ugem: QueueUgem) -> None:
    fill(ugem)

    def ids(*argv: str) -> list[str]:
        return [m["id"] for m in json.loads(ugem.ok("queue", "list", "--json", *argv))]

    assert ids("--domain", "mail.ru") == [message(1).id, message(2).id]
    assert ids("--domain", "mail.ru", "--older-than", "10m") == [message(2).id]
    assert ids("--newer-than", "1h", "--state", "deferred") == [message(1).id, message(2).id]
    assert ids("--sender", "<>") == [message(4).id]
    assert ids("--recipient", "S5@Yandex.KZ") == [message(5).id]
    assert ids("--sender", "@minfin.gov.kz", "--connection", "minfin.gov.kz") == [
        message(n).id for n in (1, 2, 3, 5)
    ]


def test_a_bad_filter_names_its_option(ugem: QueueUgem) -> None:
    fill(ugem)
    usage_error(ugem("queue", "list", "--older-than", "3x"), "--older-than")
    usage_error(ugem("queue", "summary", "--newer-than", "soon"), "--newer-than")
    usage_error(ugem("queue", "summary", "--top", "0"), "--top")
    usage_error(ugem("queue", "hold", "--sender", "nobody", "--reason", "x"), "--sender")
    usage_error(ugem("queue", "delete", "--domain", "mail.ru"), "--reason")


def test_an_action_by_filter_needs_a_filter_or_all(ugem: QueueUgem) -> None:
    fill(ugem)
    refused = ugem("queue", "delete", "--reason", "spam")
    assert refused.code == 2 and "--all" in refused.err and "--domain" in refused.err
    both = ugem("queue", "hold", message(1).id, "--domain", "mail.ru")
    assert both.code == 2 and "not both" in both.err
    assert ugem.ok("queue", "delete", "--all", "--dry-run") == (
        "would be deleted: 5 messages (dry run: nothing changed)\n"
    )
    assert len(listed(ugem)) == 5 and ugem.audit("all") == []


def test_hold_and_release_by_filter_are_audited_once(ugem: QueueUgem) -> None:
    fill(ugem)
    argv = ("--domain", "mail.ru", "--reason", "mail.ru refuses us")
    assert ugem.ok("queue", "hold", *argv) == "held 2 messages\n"
    held = {m.id: m.hold_reason for m in ugem.spooled() if m.state == QueueState.HELD}
    assert held == {message(1).id: "mail.ru refuses us", message(2).id: "mail.ru refuses us"}
    assert ugem.ok("queue", "release", *argv) == "released 2 messages\n"
    entries = ugem.audit("domain=mail.ru")
    assert [e.action for e in entries] == ["queue.bulk-release", "queue.bulk-hold"]
    assert json.loads(entries[1].details)["filter"] == {"domain": "mail.ru"}


def test_bounce_by_filter_queues_a_dsn_to_the_sender(ugem: QueueUgem) -> None:
    fill(ugem)
    out = ugem.ok("queue", "bounce", "--domain", "gmail.com", "--reason", "spam run")
    assert out == "returned 2 messages\n"  # one was a bounce: dropped, not bounced again
    left = listed(ugem)
    assert message(3).id not in left and message(4).id not in left and len(left) == 4
    [dsn_id] = [i for i, m in left.items() if m["sender"] == ""]
    dsn = ugem.get(dsn_id)  # in the spool of the message it returns: worker 0's
    assert dsn is not None and dsn.rcpts == ["a@minfin.gov.kz"] and dsn.data is not None
    assert b"deleted by the postmaster: spam run" in dsn.data


def test_flush_and_retry_all_are_one_call(ugem: QueueUgem) -> None:
    fill(ugem)
    assert ugem.ok("queue", "flush", "--reason", "peer back") == "made due 4 messages\n"
    assert {m["state"] for m in listed(ugem).values()} == {"active"}
    [entry] = ugem.audit("deferred")
    assert (entry.action, entry.reason, json.loads(entry.details)) == (
        "queue.flush",
        "peer back",
        {"count": 4},
    )
