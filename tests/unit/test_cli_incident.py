"""`ugem incident ...` and `ugem override ...` driven in-process through `ugem.cli.main`.

The commands go through the same services as the API, audited as
`cli:operator1`: incidents are listed, shown with their evidence (a throttle,
its lift and a suspension each named), acknowledged
and closed (a wrong move exits 1 saying who did it); overrides are set
(a ceiling, a timed or permanent exemption), listed and cancelled. A bad
option exits 2 naming it; an unknown incident or connection exits 1.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from tests.support.cli import Ugem, audit_log, operator, usage_error
from tests.support.connections import plain
from ugem.core.clock import FakeClock
from ugem.core.services.audit import AuditLog
from ugem.core.services.incidents import (
    CAP,
    Action,
    Evidence,
    GatewayFacts,
    IncidentService,
    Mode,
    Suspect,
)
from ugem.core.store.sqlite import SqliteStore

CONN = "akimat.gov.kz"
REASON = "412 recipients in 5 min against a usual 9 ± 4; 31 % bounced as unknown recipients"


@pytest.fixture
def ugem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Ugem:
    ugem = operator(tmp_path, capsys, monkeypatch)

    async def seed() -> None:
        store = SqliteStore(ugem.db)
        try:
            await store.add(plain(CONN))
            clock = FakeClock()
            incidents = IncidentService(store, AuditLog(store, clock), clock)
            numbers = {"recipients_5m": 412.0, "usual_recipients_5m": 9.0}
            evidence = Evidence(clock.now(), Action.WOULD_SUSPEND, REASON, numbers)
            await incidents.record(CONN, Mode.SHADOW, evidence, "detector")
        finally:
            await store.close()

    asyncio.run(seed())
    return ugem


def test_incident_list_show_ack_close(ugem: Ugem) -> None:
    listed = ugem.ok("incident", "list").splitlines()
    assert listed[0].split() == [
        "ID", "OPENED", "KIND", "CONNECTION", "MODE", "ACTION", "STATE", "VERDICTS", "REASON",
    ]  # fmt: skip
    assert listed[1].split()[:2] == ["1", "2026-01-01T05:00:00+05:00"]  # Almaty, with offset
    assert "connection  akimat.gov.kz  shadow  would-suspend  open" in listed[1]
    assert listed[1].endswith("...")  # the reason cut to the column
    shown = ugem.ok("incident", "show", "1")
    assert "  mode          shadow (would-suspend)" in shown
    assert "      31 % bounced as unknown recipients" in shown
    assert "        recipients in the last 5 min: 412" in shown
    assert "usual recipients per 5 min at this time of week: 9" in shown
    assert json.loads(ugem.ok("incident", "show", "1", "--json"))["evidence"][0]["numbers"] == {
        "recipients_5m": 412.0,
        "usual_recipients_5m": 9.0,
    }
    assert ugem.ok("incident", "ack", "1") == "incident 1 (akimat.gov.kz) is acknowledged\n"
    twice = ugem("incident", "ack", "1")
    assert twice.code == 1 and "acknowledged by cli:operator1" in twice.err
    closed = ugem.ok("incident", "close", "1", "--comment", "the quarterly newsletter")
    assert closed == "incident 1 (akimat.gov.kz) is closed\n"
    assert ugem.ok("incident", "list", "--state", "open").splitlines()[1:] == []
    [entry, *_] = audit_log(ugem.db, CONN)
    assert (entry.actor, entry.action, entry.reason) == (
        "cli:operator1",
        "incident.close",
        "the quarterly newsletter",
    )


def test_incident_show_renders_a_throttle_its_lift_and_the_suspension(ugem: Ugem) -> None:
    other = "maslikhat.gov.kz"

    async def seed() -> None:
        store = SqliteStore(ugem.db)
        try:
            await store.add(plain(other))
            clock = FakeClock()
            incidents = IncidentService(store, AuditLog(store, clock), clock)
            ts = clock.now()
            for action, reason, numbers in (
                (Action.THROTTLED, REASON, {"recipients_5m": 412.0, CAP: 20.0}),
                (Action.LIFTED, "no throttling evidence for 15 min", {}),
                (Action.SUSPENDED, REASON, {"recipients_5m": 900.0}),
            ):
                evidence = Evidence(ts, action, reason, numbers)
                await incidents.record(other, Mode.ENFORCE, evidence, "detector")
                ts += 1000
        finally:
            await store.close()

    asyncio.run(seed())
    shown = ugem.ok("incident", "show", "2")
    assert "  mode          enforce (suspended)" in shown
    verdicts = [line.split()[-1] for line in shown.splitlines() if line.startswith("    20")]
    assert verdicts == ["throttled", "throttle-lifted", "suspended"]
    assert "        recipients per 5 min let through while throttled: 20" in shown
    assert "      no throttling evidence for 15 min" in shown
    listed = json.loads(ugem.ok("incident", "show", "2", "--json"))
    assert [e["action"] for e in listed["evidence"]] == [
        "throttled",
        "throttle-lifted",
        "suspended",
    ]


def test_a_gateway_incident_is_listed_shown_and_closed_with_its_kind(ugem: Ugem) -> None:
    subject = "gateway:blocklisted-replies"

    async def seed() -> None:
        store = SqliteStore(ugem.db)
        try:
            clock = FakeClock()
            incidents = IncidentService(store, AuditLog(store, clock), clock)
            reason = "4 replies refused our mail as blocklisted; lists cited: Spamhaus (4)"
            numbers = {"blocklisted_replies": 4.0, "window_h": 6.0}
            evidence = Evidence(clock.now(), Action.BLOCKLISTED_REPLIES, reason, numbers)
            suspect = Suspect(CONN, 1.5, 9, {"blocklisted": 4}, 1, "throttled")
            facts = GatewayFacts(("198.51.100.25",), "", ("Spamhaus",), (suspect,))
            await incidents.record_gateway(subject, evidence, "reputation", facts)
        finally:
            await store.close()

    asyncio.run(seed())
    listed = ugem.ok("incident", "list").splitlines()
    assert f"gateway     {subject}  alert   blocklisted-replies  open" in listed[1]
    assert listed[2].split()[2:4] == ["connection", CONN]
    shown = ugem.ok("incident", "show", "2")
    assert "  kind          gateway" in shown
    assert "  mode          alert (blocklisted-replies)" in shown
    assert "  addresses     198.51.100.25" in shown and "  blocklists    Spamhaus" in shown
    assert f"    1. {CONN}: 4 of 9 delivery attempts rejected (blocklisted 4); 1 compl" in shown
    assert "replies refusing our mail as blocklisted, within the burst window: 4" in shown
    by_subject = json.loads(ugem.ok("incident", "list", "--connection", subject, "--json"))
    assert [(i["id"], i["kind"]) for i in by_subject] == [(2, "gateway")]
    assert ugem.ok("incident", "close", "2") == f"incident 2 ({subject}) is closed\n"


def test_incident_errors(ugem: Ugem) -> None:
    usage_error(ugem("incident", "show", "one"), "N")
    usage_error(ugem("incident", "list", "--state", "lost"), "--state")
    usage_error(ugem("incident", "list", "--limit", "0"), "--limit")
    missing = ugem("incident", "ack", "9")
    assert missing.code == 1 and missing.err == (
        "ugem: no incident 9; `ugem incident list` shows them\n"
    )


def test_override_ceiling_exempt_list_cancel(ugem: Ugem) -> None:
    until = str(time.time() + 7200)
    out = ugem.ok(
        "override", "ceiling", CONN, "--until", until, "--messages-per-hour", "5000",
        "--reason", "quarterly newsletter",
    )  # fmt: skip
    assert out.startswith("set override ") and "a ceiling of 5000 messages per hour" in out
    ident = out.split()[2].rstrip(":")
    clash = ugem("override", "exempt", CONN, "--permanent", "--reason", "agreed")
    assert clash.code == 1 and f"override {ident}" in clash.err
    [row] = ugem.ok("override", "list", "--current").splitlines()[1:]
    assert row.split()[:3] == [ident, CONN, "ceiling"] and "in force" in row
    [shown] = json.loads(ugem.ok("override", "list", "--connection", CONN, "--json"))
    assert (shown["max_messages_per_hour"], shown["created_by"]) == (5000, "cli:operator1")
    cancelled = ugem.ok("override", "cancel", ident, "--reason", "postponed")
    assert cancelled == f"override {ident} of {CONN} cancelled\n"
    assert "exempt" in ugem.ok("override", "exempt", CONN, "--permanent", "--reason", "agreed")
    actions = [e.action for e in audit_log(ugem.db, CONN)[:3]]
    assert actions == ["override.set", "override.cancel", "override.set"]


def test_override_errors_name_the_option(ugem: Ugem) -> None:
    until = str(time.time() + 7200)
    usage_error(
        ugem("override", "ceiling", CONN, "--until", until, "--reason", "r"),
        "--messages-per-hour",
    )
    usage_error(
        ugem("override", "ceiling", CONN, "--until", "soon", "--messages-per-hour", "5",
             "--reason", "r"),
        "--until",
    )  # fmt: skip
    usage_error(ugem("override", "exempt", CONN, "--until", "1", "--reason", "r"), "--until")
    nobody = ugem("override", "exempt", "nobody.gov.kz", "--permanent", "--reason", "r")
    assert nobody.code == 1 and "no connection 'nobody.gov.kz'" in nobody.err
