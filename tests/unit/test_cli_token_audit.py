"""`ugem token ...` and `ugem audit ...` driven in-process through `ugem.cli.main`.

A token is printed once and works for the API's check; only its hash is
stored; revoking stops it; `create --replace` run again gives a working token
and stops the old one, revoked or not. `ugem audit verify` passes on an untouched log and
finds one edited, one deleted (in the middle or at the end) or one inserted
entry, in SQLite and in a real Redis (edited behind the store's back).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path

import pytest
import redis

from tests.support.cli import Ugem, operator
from tests.unit.test_cli_connection import EDU
from ugem.cli import main
from ugem.core.clock import FakeClock
from ugem.core.services.audit import AuditLog
from ugem.core.services.tokens import TokenService
from ugem.core.store.redis_keys import PREFIX
from ugem.core.store.sqlite import SqliteStore


@pytest.fixture
def ugem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Ugem:
    return operator(tmp_path, capsys, monkeypatch)


def _authenticate(db: Path, secret: str) -> str | None:
    async def check() -> str | None:
        store = SqliteStore(db)
        try:
            clock = FakeClock()
            token = await TokenService(store, AuditLog(store, clock), clock).authenticate(secret)
            return None if token is None else f"{token.name}:{token.role}"
        finally:
            await store.close()

    return asyncio.run(check())


def test_token_create_prints_it_once_and_stores_only_a_hash(ugem: Ugem) -> None:
    out = ugem.ok("token", "create", "--name", "noc", "--role", "operator")
    secret = out.splitlines()[0]
    assert secret.startswith("ugem_") and len(secret) > 40
    assert _authenticate(ugem.db, secret) == "noc:operator"
    assert _authenticate(ugem.db, secret + "x") is None
    assert secret.encode() not in ugem.db.read_bytes()
    listed = ugem.ok("token", "list")
    assert "noc" in listed and "operator" in listed and secret not in listed
    assert ugem.ok("token", "revoke", "noc", "--reason", "left") == "token noc revoked\n"
    assert _authenticate(ugem.db, secret) is None
    [shown] = json.loads(ugem.ok("token", "list", "--json"))
    assert shown["revoked_at"].endswith("+05:00") and "digest" not in shown  # RFC 3339, Almaty
    audit = json.loads(ugem.ok("audit", "list", "--target", "noc", "--json"))
    assert [(e["actor"], e["action"], e["reason"]) for e in audit] == [
        ("cli:operator1", "token.revoke", "left"),
        ("cli:operator1", "token.create", ""),
    ]


@pytest.mark.parametrize(
    ("argv", "code", "words"),
    [
        (["token", "create", "--name", "noc", "--role", "root"], 2, "role: 'root'"),
        (["token", "create", "--name", "bad name", "--role", "viewer"], 2, "name: 'bad name'"),
        (["token", "revoke", "nobody"], 1, "no token 'nobody'"),
    ],
)
def test_bad_token_commands_say_what_is_wrong(
    ugem: Ugem, argv: list[str], code: int, words: str
) -> None:
    result = ugem(*argv)
    assert result.code == code and words in result.err, result


def test_token_names_are_unique_and_revoke_twice_is_a_conflict(ugem: Ugem) -> None:
    ugem.ok("token", "create", "--name", "noc", "--role", "viewer")
    again = ugem("token", "create", "--name", "noc", "--role", "admin")
    assert again.code == 1 and "token 'noc' exists" in again.err
    ugem.ok("token", "revoke", "noc")
    twice = ugem("token", "revoke", "noc")
    assert twice.code == 1 and "revoked already" in twice.err


def test_create_replace_run_twice_gives_a_working_token_and_stops_the_old_one(
    ugem: Ugem,
) -> None:
    def create(*extra: str) -> str:
        return ugem.ok("token", "create", "--name", "noc", "--role", "operator", *extra)

    first = create("--replace").splitlines()[0]  # no token of that name yet: a plain create
    assert _authenticate(ugem.db, first) == "noc:operator"
    second = create("--replace").splitlines()[0]
    assert second != first and _authenticate(ugem.db, second) == "noc:operator"
    assert _authenticate(ugem.db, first) is None
    ugem.ok("token", "revoke", "noc")
    third = ugem.ok("token", "create", "--name", "noc", "--role", "viewer", "--replace")
    assert _authenticate(ugem.db, third.splitlines()[0]) == "noc:viewer"
    assert _authenticate(ugem.db, second) is None
    [shown] = json.loads(ugem.ok("token", "list", "--json"))
    assert (shown["role"], shown["revoked_at"]) == ("viewer", None)
    audit = json.loads(ugem.ok("audit", "list", "--target", "noc", "--json"))
    assert [e["action"] for e in audit] == [
        "token.replace",
        "token.revoke",
        "token.replace",
        "token.create",
    ]
    before, after = json.loads(audit[0]["before"]), json.loads(audit[0]["after"])
    assert before["revoked_at"] and (before["role"], after["role"]) == ("operator", "viewer")
    assert "digest" not in before and "digest" not in after
    plain = ugem("token", "create", "--name", "noc", "--role", "viewer")
    assert plain.code == 1 and "token 'noc' exists" in plain.err  # without --replace: refused


def _history(ugem: Ugem) -> None:
    ugem.ok(*EDU)
    ugem.ok("connection", "suspend", "edu.gov.kz", "--reason", "spam")
    ugem.ok("connection", "resume", "edu.gov.kz")
    ugem.ok("token", "create", "--name", "noc", "--role", "viewer")


TAMPERING = {
    "edited": ("UPDATE audit SET reason = 'nothing happened' WHERE seq = 2", "content"),
    "deleted": ("DELETE FROM audit WHERE seq = 2", "record 2: missing"),
    "deleted at the end": ("DELETE FROM audit WHERE seq = 4", "the head names record 4"),
    "inserted": (
        "INSERT INTO audit (seq, prev, hash, ts, actor, action, target, reason, details,"
        " before, after) SELECT 5, hash, hash, ts, actor, action, target, reason, details,"
        " before, after FROM audit WHERE seq = 4",
        "the head names record 4",
    ),
}


@pytest.mark.parametrize("how", TAMPERING)
def test_audit_verify_finds_tampering_in_sqlite(ugem: Ugem, how: str) -> None:
    _history(ugem)
    intact = ugem("audit", "verify")
    assert intact.code == 0 and "intact: 4 entries" in intact.out, intact
    sql, words = TAMPERING[how]
    with contextlib.closing(sqlite3.connect(ugem.db)) as db, db:
        db.execute(sql)
    broken = ugem("audit", "verify")
    assert broken.code == 1 and "BROKEN" in broken.out and words in broken.out, broken


AUDIT_LOG = f"{PREFIX}auditlog"  # the audit list of a Redis store (ugem.core.store.redis)


def test_audit_verify_finds_an_edited_entry_in_redis(
    ugem: Ugem, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UGEM_STORE_URL", redis_url)
    _history(ugem)
    assert ugem("audit", "verify").code == 0
    with redis.Redis.from_url(redis_url) as client:
        record = json.loads(client.lindex(AUDIT_LOG, 1))  # type: ignore[arg-type]
        record["actor"] = "cli:somebody-else"
        client.lset(AUDIT_LOG, 1, json.dumps(record))
    broken = ugem("audit", "verify")
    assert broken.code == 1 and "record 2: its content does not match" in broken.out, broken


def test_audit_list_filters_and_refuses_a_bad_limit(ugem: Ugem) -> None:
    _history(ugem)
    rows = json.loads(ugem.ok("audit", "list", "--action", "connection.suspend", "--json"))
    assert [(r["seq"], r["target"], r["reason"]) for r in rows] == [(2, "edu.gov.kz", "spam")]
    assert "connection.resume" in ugem.ok("audit", "list")
    assert main(["--config", str(ugem.config), "audit", "list", "--limit", "0"]) == 2
