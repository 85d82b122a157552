"""`ugem queue ...` driven through `ugem.cli.main`, as an operator types it.

Each test has its own config file whose data dir is tmp_path; the spool is
filled beforehand through `Spool.commit`, exactly as a node fills it (worker
0's, and worker 1's `queue-w1.db` where a test has two workers). The last
test runs the real command in another process while a node's spool is open.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from pathlib import Path

import pytest

from relay.queue.message import QueuedMessage, QueueState
from relay.queue.spool import Spool, spool_path
from tests.support.cli import Ugem, audit_log
from tests.unit.test_spool import ROOT, message
from ugem.cli import main
from ugem.core.clock import FakeClock
from ugem.core.config import load_config
from ugem.core.metrics import Metrics
from ugem.core.services.mailqueue import OPERATOR_HOLD
from ugem.core.store.base import AuditEntry
from ugem.core.times import rfc3339


class QueueUgem(Ugem):
    """The CLI on a node's data dir whose spool the test fills and reads back."""

    @property
    def spool(self) -> Path:
        return spool_path(load_config(self.config))

    def fill(self, *msgs: QueuedMessage, worker: int = 0) -> None:
        """Commit messages (with their states) as worker `worker` of a node would."""

        async def run() -> None:
            spool = Spool(spool_path(load_config(self.config), worker), FakeClock(), Metrics())
            await spool.open()
            try:
                for msg in msgs:
                    await spool.commit(msg)
            finally:
                await spool.close()

        asyncio.run(run())

    def get(self, queue_id: str, worker: int = 0) -> QueuedMessage | None:
        async def run() -> QueuedMessage | None:
            spool = Spool(spool_path(load_config(self.config), worker), FakeClock(), Metrics())
            await spool.open(recover=False)
            try:
                return await spool.get(queue_id)
            finally:
                await spool.close()

        return asyncio.run(run())

    def audit(self, target: str) -> list[AuditEntry]:
        return audit_log(self.db, target)


@pytest.fixture
def ugem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> QueueUgem:
    config = tmp_path / "ugem.toml"
    config.write_text(f'[node]\ndata_dir = "{tmp_path}"\n', encoding="utf-8")
    return QueueUgem(config, tmp_path / "registry.db", capsys)


def deferred(n: int, error: str = "451 4.3.0 try again later") -> QueuedMessage:
    msg = message(n)
    msg.state, msg.attempts, msg.next_attempt, msg.last_error = (
        QueueState.DEFERRED,
        3,
        1_767_229_200.0,
        error,
    )
    return msg


def test_list_prints_a_mailq_table(ugem: QueueUgem) -> None:
    bounce = message(2, connection="")
    bounce.sender = ""
    ugem.fill(message(1), bounce, deferred(3, "x" * 200))
    lines = ugem.ok("queue", "list").splitlines()
    assert lines[0].split() == [
        "ID",
        "STATE",
        "SIZE",
        "AGE",
        "SENDER",
        "RCPTS",
        "ATTEMPTS",
        "LAST_ERROR",
    ]
    rows = [line.split() for line in lines[1:]]
    assert [r[0] for r in rows] == [message(n).id for n in (1, 2, 3)]
    assert rows[0][1:3] == ["active", str(message(1).size)]
    assert rows[1][4:7] == ["<>", "2", "0"]
    assert rows[2][1] == "deferred" and rows[2][6] == "3"
    assert rows[2][7].endswith("...") and len(rows[2][7]) == 60  # a long error is cut
    only = ugem.ok("queue", "list", "--state", "deferred").splitlines()
    assert [line.split()[0] for line in only[1:]] == [message(3).id]


def test_list_json_and_filters(ugem: QueueUgem) -> None:
    ugem.fill(message(1), message(2, connection="edu.gov.kz"), deferred(3, "451 busy"))
    out = json.loads(ugem.ok("queue", "list", "--json", "--connection", "minfin.gov.kz"))
    assert [m["id"] for m in out] == [message(1).id, message(3).id]
    assert out[1] | {"age_seconds": 0} == {
        "id": message(3).id,
        "state": "deferred",
        "hold_reason": "",
        "size": message(3).size,
        "received_at": rfc3339(message(3).received_at),
        "age_seconds": 0,
        "connection": "minfin.gov.kz",
        "client_ip": "10.0.0.1",
        "sender": "a@minfin.gov.kz",
        "rcpts": message(3).rcpts,
        "original_rcpts": message(3).original_rcpts,
        "attempts": 3,
        "next_attempt": "2026-01-01T06:00:00+05:00",  # 01:00Z
        "last_error": "451 busy",
    }
    assert json.loads(ugem.ok("queue", "list", "--json", "--state", "held")) == []
    bad = ugem("queue", "list", "--limit", "0")
    assert bad.code == 2 and "--limit" in bad.err


def test_show_prints_envelope_and_headers_and_body_on_request(ugem: QueueUgem) -> None:
    msg = deferred(7, "451 4.7.0 greylisted")
    ugem.fill(msg)
    out = ugem.ok("queue", "show", msg.id)
    assert f"id:                  {msg.id}" in out
    assert "state:               deferred" in out
    assert "sender:              <a@minfin.gov.kz>" in out
    assert "recipients:          r7@example.org, x@example.net" in out
    assert "last error:          451 4.7.0 greylisted" in out
    assert "Subject: test 7" in out and "body" not in out
    with_body = ugem.ok("queue", "show", msg.id, "--body")
    assert with_body.startswith(out) and "binary" in with_body
    shown = json.loads(ugem.ok("queue", "show", msg.id, "--json"))
    assert shown["headers"] == "Subject: test 7" and "body" not in shown
    assert shown["original_rcpts"] == msg.original_rcpts
    shown = json.loads(ugem.ok("queue", "show", msg.id, "--json", "--body"))
    assert shown["body"].startswith("binary")


def test_hold_and_release_change_the_state_and_are_audited(ugem: QueueUgem) -> None:
    a, b = message(1), deferred(2)
    ugem.fill(a, b)
    assert ugem.ok("queue", "hold", a.id, b.id, "--reason", "abuse report 42") == (
        "held 2 messages\n"
    )
    held = ugem.get(b.id)
    assert held is not None and (held.state, held.hold_reason) == (
        QueueState.HELD,
        "abuse report 42",
    )
    again = ugem("queue", "hold", a.id)  # held already: the service's conflict, no change
    assert again.code == 1 and again.out == ""
    assert f"{a.id} is held already (abuse report 42)" in again.err
    (first,) = ugem.audit(a.id)
    assert (first.actor, first.action, first.target, first.reason) == (
        f"cli:{getpass.getuser()}",
        "queue.hold",
        a.id,
        "abuse report 42",
    )
    assert json.loads(first.details) == {"count": 1}

    assert ugem.ok("queue", "release", a.id, "--reason", "checked") == "released 1 message\n"
    released = ugem.get(a.id)
    assert released is not None and (released.state, released.hold_reason) == (
        QueueState.ACTIVE,
        "",
    )
    newest = ugem.audit(a.id)[0]
    assert (newest.action, newest.reason, newest.details) == (
        "queue.release",
        "checked",
        '{"count": 1}',
    )


def test_delete_removes_and_is_audited(ugem: QueueUgem) -> None:
    ugem.fill(message(1), message(2))
    assert ugem.ok("queue", "delete", message(1).id, "--reason", "spam") == "deleted 1 message\n"
    assert ugem.get(message(1).id) is None and ugem.get(message(2).id) is not None
    (entry,) = ugem.audit(message(1).id)
    assert (entry.action, entry.reason, json.loads(entry.details)) == (
        "queue.delete",
        "spam",
        {"count": 1},
    )


def test_an_unknown_id_fails_and_changes_nothing(ugem: QueueUgem) -> None:
    ugem.fill(message(1))
    for verb in ("hold", "release", "delete", "retry"):
        result = ugem("queue", verb, message(1).id, "NOSUCHID")
        assert result.code == 1 and result.out == ""
        assert "queue id not found: NOSUCHID" in result.err
    assert ugem.get(message(1).id) == message(1)
    assert ugem.audit(message(1).id) == []
    missing = ugem("queue", "show", "NOSUCHID")
    assert missing.code == 1 and "NOSUCHID" in missing.err


def test_retry_makes_deferred_mail_due(ugem: QueueUgem) -> None:
    ugem.fill(deferred(1), deferred(2), message(3))
    mixed = ugem("queue", "retry", deferred(1).id, message(3).id)  # one is due already
    assert mixed.code == 1 and f"{message(3).id} is active, not deferred" in mixed.err
    unchanged = ugem.get(deferred(1).id)
    assert unchanged is not None and unchanged.state == QueueState.DEFERRED
    assert ugem.ok("queue", "retry", deferred(1).id, "--reason", "peer back") == (
        "made due 1 message\n"
    )
    first = ugem.get(deferred(1).id)
    assert first is not None and first.state == QueueState.ACTIVE
    (entry,) = ugem.audit(deferred(1).id)
    assert (entry.action, entry.reason, json.loads(entry.details)) == (
        "queue.retry",
        "peer back",
        {"count": 1},
    )
    assert ugem.ok("queue", "retry", "--all") == "made due 1 message\n"
    (every,) = ugem.audit("deferred")
    assert (every.action, json.loads(every.details)) == ("queue.flush", {"count": 1})
    for argv in (["queue", "retry"], ["queue", "retry", "--all", message(3).id]):
        result = ugem(*argv)
        assert result.code == 2 and "--all" in result.err


def test_every_workers_spool_is_one_queue(ugem: QueueUgem) -> None:
    """`ugem serve --workers 2` keeps spool/queue.db and spool/queue-w1.db."""
    ugem.fill(message(1), deferred(3))
    ugem.fill(message(2), deferred(4), worker=1)
    listed = json.loads(ugem.ok("queue", "list", "--json"))
    assert [m["id"] for m in listed] == [message(n).id for n in (1, 2, 3, 4)]
    some = json.loads(ugem.ok("queue", "list", "--json", "--state", "deferred", "--limit", "1"))
    assert [m["id"] for m in some] == [deferred(3).id]
    assert "Subject: test 2" in ugem.ok("queue", "show", message(2).id)
    assert ugem.ok("queue", "hold", message(1).id, message(2).id) == "held 2 messages\n"
    held = ugem.get(message(2).id, worker=1)
    assert held is not None and (held.state, held.hold_reason) == (
        QueueState.HELD,
        OPERATOR_HOLD,
    )
    assert ugem.ok("queue", "release", message(2).id) == "released 1 message\n"
    assert ugem.ok("queue", "retry", "--all") == "made due 2 messages\n"
    assert ugem.ok("queue", "delete", deferred(4).id) == "deleted 1 message\n"
    assert ugem.get(deferred(4).id, worker=1) is None
    assert [e.action for e in ugem.audit(message(2).id)] == ["queue.release", "queue.hold"]


def test_config_after_the_command_name(ugem: QueueUgem, capsys: pytest.CaptureFixture[str]) -> None:
    ugem.fill(message(1))
    assert main(["queue", "list", "--json", "--config", str(ugem.config)]) == 0
    assert [m["id"] for m in json.loads(capsys.readouterr().out)] == [message(1).id]


async def test_the_command_edits_the_spool_of_a_running_node(ugem: QueueUgem) -> None:
    node = Spool(ugem.spool, FakeClock(), Metrics())
    await node.open()
    try:
        msg = message(1)
        await node.commit(msg)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ugem.cli",
            "--config",
            str(ugem.config),
            "queue",
            "hold",
            msg.id,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert (proc.returncode, out, err) == (0, b"held 1 message\n", b"")
        assert await node.due(1e12, 10) == []  # seen on the node's next scan
        msg.state, msg.attempts = QueueState.DEFERRED, 1
        await node.update(msg)  # an attempt that ends later does not release it
        got = await node.get(msg.id, with_data=False)
        assert got is not None and got.state == QueueState.HELD and got.attempts == 1
    finally:
        await node.close()
