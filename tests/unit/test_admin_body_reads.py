"""Reading a queued message's body: the operator role, and an audit record for every read.

A viewer sees the envelope and the headers but gets 403 naming the role for
the body; an operator's read is in the audit log (who, when, which message,
why) before the body is given, and a read that cannot be audited gives
nothing. `ugem queue show --body` reads through the same service, so the
CLI's reads are audited too (as `cli:<login>`), and a show without the body
is not.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.queue.message import QueuedMessage, QueueState
from tests.support.admin import AdminApi, admin_api
from tests.unit.test_cli_queue import QueueUgem
from tests.unit.test_spool import message
from ugem.core.errors import StoreError
from ugem.core.services.tokens import Role
from ugem.core.times import rfc3339

QUEUE_ID = "HELDMSG00001"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with admin_api(tmp_path) as api:
        data = b"Subject: salary\r\n\r\nprivate letter\r\n"
        await api.spool.commit(
            QueuedMessage(
                QUEUE_ID, "a@a.gov.kz", ["x@example.org"], data, len(data), "a.gov.kz",
                "192.0.2.10", api.clock.now(), QueueState.HELD,
            )
        )  # fmt: skip
        yield api


async def reads(api: AdminApi) -> list[dict[str, object]]:
    answer = await api.call("GET", "/v1/audit?action=queue.read-body")
    assert answer.status_code == 200
    found: list[dict[str, object]] = answer.json()["items"]
    return found


async def test_a_viewer_sees_the_headers_but_not_the_body(api: AdminApi) -> None:
    shown = await api.call("GET", f"/v1/queue/{QUEUE_ID}", Role.VIEWER)
    assert shown.status_code == 200
    assert "Subject: salary" in shown.json()["headers"] and shown.json()["body"] is None
    refused = await api.call("GET", f"/v1/queue/{QUEUE_ID}?body=true", Role.VIEWER)
    assert refused.status_code == 403, refused.text
    assert "needs the operator role" in refused.json()["detail"]
    assert "private" not in refused.text
    assert await reads(api) == []


async def test_each_body_read_is_audited_with_who_when_what_and_why(api: AdminApi) -> None:
    api.clock.advance(60)
    path = f"/v1/queue/{QUEUE_ID}?body=true&reason=abuse%20report%2042"
    for _ in range(2):
        read = await api.call("GET", path, Role.OPERATOR)
        assert read.status_code == 200 and read.json()["body"] == "private letter\r\n"
    assert (await api.call("GET", f"/v1/queue/{QUEUE_ID}", Role.OPERATOR)).status_code == 200
    entries = await reads(api)
    assert len(entries) == 2  # one per read of a body; the show without it is not one
    entry = entries[0]
    assert (entry["actor"], entry["target"], entry["reason"], entry["ts"]) == (
        "api:operator-token",
        QUEUE_ID,
        "abuse report 42",
        rfc3339(api.clock.now()),
    )
    assert entry["details"] == {"connection": "a.gov.kz", "size": 35}


async def test_a_read_that_cannot_be_audited_gives_no_body(
    api: AdminApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: object, **__: object) -> None:
        raise StoreError("store down (test)")

    monkeypatch.setattr(api.services.queue.audit, "record", broken)
    answer = await api.call("GET", f"/v1/queue/{QUEUE_ID}?body=true", Role.OPERATOR)
    assert answer.status_code == 503 and "private" not in answer.text


def test_the_cli_reads_bodies_through_the_audited_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "ugem.toml"
    config.write_text(f'[node]\ndata_dir = "{tmp_path}"\n', encoding="utf-8")
    ugem = QueueUgem(config, tmp_path / "registry.db", capsys)
    msg = message(7)
    ugem.fill(msg)
    assert "binary" not in ugem.ok("queue", "show", msg.id)
    assert ugem.audit(msg.id) == []
    shown = json.loads(ugem.ok("queue", "show", msg.id, "--json", "--body", "--reason", "case 9"))
    assert shown["body"].startswith("binary")
    [entry] = ugem.audit(msg.id)
    assert (entry.actor, entry.action, entry.reason) == (
        f"cli:{getpass.getuser()}",
        "queue.read-body",
        "case 9",
    )
