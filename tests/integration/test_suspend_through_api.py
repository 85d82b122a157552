"""Scenario: an operator suspends a server through the admin API, resumes it, then purges.

Suspending `mdai.gov.kz` with `POST /v1/connections/{id}/suspend` makes its
server's next MAIL FROM get 451 4.7.1 (`replies.SUSPENDED`) and holds its
mail already queued (listed by `GET /v1/queue?state=held`); resuming releases
that mail and it is delivered. Suspended again with a new message queued,
`POST /v1/queue/purge` deletes the held mail, and the audit log says who
suspended, resumed and purged how many messages, with the chain intact.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from relay import replies
from tests.support.clients import Sent
from tests.support.node import api_client, node_relaying_to, running_node, send_mail
from tests.support.sink import Sink
from tests.support.waiting import eventually
from ugem.core.config import Config
from ugem.core.services.tokens import Role

CONN, SERVER = "mdai.gov.kz", "127.0.0.2"
DEFER = "451 4.3.0 not now"


async def send(config: Config, subject: str) -> Sent:
    return await send_mail(config, f"a@{CONN}", ["x@example.org"], SERVER, subject)


async def held_ids(api: httpx.AsyncClient) -> list[str]:
    found = await api.get("/v1/queue", params={"state": "held", "connection": CONN})
    assert found.status_code == 200, found.text
    return [m["id"] for m in found.json()["items"]]


async def test_suspend_via_api_gives_451_holds_then_resume_delivers_and_purge_deletes(
    tmp_path: Path,
) -> None:
    external = await Sink.start("127.0.0.1", 0)
    external.data_replies = [DEFER]  # the first message stays queued (deferred)
    config, _ = await node_relaying_to(
        tmp_path, external, CONN, [SERVER], delivery={"min_backoff": 3600.0, "max_backoff": 3600.0}
    )
    try:
        async with running_node(config) as node, api_client(node, "noc", Role.OPERATOR) as api:
            first = await send(config, "first")
            assert first.ok, first
            await eventually(lambda: not external.data_replies, what="first attempt deferred")

            suspended = await api.post(
                f"/v1/connections/{CONN}/suspend", json={"reason": "spam burst"}
            )
            assert suspended.status_code == 200, suspended.text
            assert suspended.json()["state"] == "suspended"
            refused = await send(config, "refused")
            assert (refused.code, refused.text.split(" ", 1)[0]) == (
                replies.SUSPENDED.code,
                replies.SUSPENDED.status,
            )
            first_id = first.text.rsplit(" ", 1)[-1]
            assert await held_ids(api) == [first_id]

            resumed = await api.post(f"/v1/connections/{CONN}/resume", json={})
            assert resumed.status_code == 200, resumed.text
            await external.wait_for(1, timeout=30)
            assert external.messages[0].sender == f"a@{CONN}"

            external.data_replies = [DEFER]
            second = await send(config, "second")
            assert second.ok, second
            await eventually(lambda: not external.data_replies, what="second deferred")
            again = await api.post(f"/v1/connections/{CONN}/suspend", json={"reason": "again"})
            assert again.status_code == 200, again.text
            assert await held_ids(api) == [second.text.rsplit(" ", 1)[-1]]

            purged = await api.post("/v1/queue/purge", json={"connection": CONN})
            assert purged.json() == {"count": 1}
            assert await held_ids(api) == []

            entries = (await api.get("/v1/audit", params={"target": CONN})).json()["items"]
            log = [e for e in entries if e["action"] != "notice.failed"]  # it has no contacts
            assert [(e["actor"], e["action"]) for e in log] == [
                ("api:noc", "queue.purge"),
                ("api:noc", "connection.suspend"),
                ("api:noc", "connection.resume"),
                ("api:noc", "connection.suspend"),
            ]
            assert log[0]["details"] == {"count": 1}
            assert log[-1]["before"]["state"] == "connected"
            assert log[-1]["after"] == {"state": "suspended", "reason": "spam burst"}
            verdict = (await api.get("/v1/audit/verify")).json()
            assert verdict["ok"] is True, verdict
        assert len(external.messages) == 1
    finally:
        await external.stop()
