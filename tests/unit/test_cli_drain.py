"""`ugem drain` in-process, as an operator types it: its options, its status and its report.

The receiving node is one nobody listens on (127.0.0.1:9): what needs a real
receiver is in tests/integration/test_drain_*.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from relay.queue.message import QueuedMessage, QueueState
from relay.queue.spool import Spool, spool_path
from tests.support.cli import Ugem, audit_log, operator, usage_error
from ugem.core.clock import SystemClock
from ugem.core.config import load_config
from ugem.core.metrics import Metrics
from ugem.core.services import drain

NOBODY = "127.0.0.1:9"


@pytest.fixture
def ugem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Ugem:
    monkeypatch.setattr(drain, "RETRY_DELAY", 0.01)
    return operator(tmp_path, capsys, monkeypatch)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "b.token"
    path.write_text("ugem_secret_of_b\n", encoding="utf-8")
    return path


def queue_one(ugem: Ugem) -> str:
    """One deferred message in the node's spool; its id."""
    data = b"Subject: x\r\n\r\nbody\r\n"
    msg = QueuedMessage(
        "CLIDRAIN00000000001", "a@b.gov.kz", ["x@example.org"], data, len(data), "b.gov.kz",
        "192.0.2.1", 1.0, QueueState.DEFERRED, 1, 2.0, "451 later",
    )  # fmt: skip

    async def commit() -> None:
        spool = Spool(spool_path(load_config(ugem.config, env={})), SystemClock(), Metrics())
        await spool.open()
        try:
            await spool.commit(msg)
        finally:
            await spool.close()

    asyncio.run(commit())
    return msg.id


def test_options_are_checked_before_anything_changes(ugem: Ugem, token_file: Path) -> None:
    usage_error(ugem("drain", "--to", NOBODY), "--token-file")
    usage_error(ugem("drain", "--to", "no port", "--token-file", str(token_file)), "--to")
    empty = token_file.with_name("empty")
    empty.write_text("\n", encoding="utf-8")
    usage_error(ugem("drain", "--to", NOBODY, "--token-file", str(empty)), "--token-file")
    assert ugem.ok("drain", "--status").startswith("not draining")


def test_an_unreachable_receiver_leaves_the_mail_and_the_node_draining(
    ugem: Ugem, token_file: Path
) -> None:
    queued = queue_one(ugem)
    result = ugem("drain", "--to", NOBODY, "--token-file", str(token_file))
    assert result.code == 1
    assert result.out.startswith(f"not drained into {NOBODY}: {NOBODY} not reached")
    assert "moved 0, already there 0, failed 0, left 1" in result.out
    assert [m.id for m in ugem.spooled()] == [queued]
    status = json.loads(ugem.ok("drain", "--status", "--json"))
    assert status["draining"] and status["request"]["to"] == NOBODY
    assert (status["report"]["state"], status["report"]["left"]) == ("stopped", 1)
    assert ugem.ok("drain", "--cancel", "--reason", "wrong node").startswith("not draining")
    actions = [(e.action, e.actor) for e in audit_log(ugem.db, NOBODY)]
    assert actions == [
        ("node.drain-cancel", "cli:operator1"),
        ("node.drained", "cli:operator1"),
        ("node.drain", "cli:operator1"),
    ]


def test_an_empty_node_is_drained_at_once(ugem: Ugem, token_file: Path) -> None:
    report = json.loads(ugem.ok("drain", "--to", NOBODY, "--token-file", str(token_file), "--json"))
    assert (report["state"], report["moved"], report["left"]) == ("done", 0, 0)
