"""Scenario: a postmaster finds what became of each message, after it left the queue.

A real node (on a FakeClock, so a retry comes when the test says) relays a
connected organisation's mail to a sink and to a next hop that refuses one
recipient (550) and defers another (451) until it takes it on the retry;
a stranger's relay attempt is refused at RCPT. Once every message has left
the queue, `ugem log search` (a child process, as an operator runs it) and
`GET /v1/messages` give each one's whole history: accepted, each attempt per
recipient with its next hop, reply and delays, the end; the refusal with
why. The mail log's INFO lines carry the documented fields. A message an
operator held (through the API) and deleted (with `ugem queue delete`) shows
who did each and why.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from relay import replies
from relay.accept.refusals import why
from tests.support.node import api_client, node_relaying_to, queued_until, running_node, send_mail
from tests.support.sink import Sink
from tests.support.waiting import eventually_read
from ugem.core.clock import FakeClock
from ugem.core.services.tokens import Role
from ugem.node import Node

SENDER = "clerk@mdai.gov.kz"
NO_SUCH_USER = "550 5.1.1 No such user"
BUSY = "451 4.2.1 Mailbox busy, try later"
DAY = "2026-01-01"  # the FakeClock's day in Almaty (it starts at 05:00 there)


@dataclass
class Scene:
    node: Node
    config_path: Path
    sink: Sink
    hop: Sink  # the next hop of refuse.example
    clock: FakeClock
    busy: bool = True  # the hop defers busy@ while this holds


@pytest.fixture
async def scene(tmp_path: Path, sink: Sink) -> AsyncIterator[Scene]:
    hop = await Sink.start()
    clock = FakeClock()
    routes = {
        "example.org": f"{sink.host}:{sink.port}",
        "refuse.example": f"{hop.host}:{hop.port}",
        "mdai.gov.kz": f"{sink.host}:{sink.port}",  # the DSN to the sender
    }
    config, path = await node_relaying_to(tmp_path, sink, delivery={"routes": routes})
    try:
        async with running_node(config, clock) as node:
            scene = Scene(node, path, sink, hop, clock)
            hop.rcpt_reply = lambda rcpt: _hop_reply(scene, rcpt)
            yield scene
    finally:
        await hop.stop()


def _hop_reply(scene: Scene, rcpt: str) -> str | None:
    if rcpt.startswith("nouser@"):
        return NO_SUCH_USER
    return BUSY if scene.busy and rcpt.startswith("busy@") else None


async def sent(scene: Scene, rcpts: list[str], subject: str) -> str:
    """The queue id of a message the organisation's server sends."""
    got = await send_mail(scene.node.config, SENDER, rcpts, "127.0.0.2", subject)
    assert got.ok, got
    return got.text.rsplit(" ", 1)[-1]


async def left_queue(node: Node, queue_id: str) -> None:
    spool = node.spool
    assert spool is not None

    async def read() -> bool:
        return await spool.get(queue_id, with_data=False) is None

    await eventually_read(read, bool, 10, f"{queue_id} left the queue")


async def ugem(scene: Scene, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UGEM_")}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ugem.cli", "--config", str(scene.config_path), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await child.communicate()
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()


async def search(scene: Scene, *filters: str) -> dict[str, Any]:
    """`ugem log search ... --json` as an operator runs it, once the index has it all."""
    assert scene.node.maillog is not None
    await scene.node.maillog.settle()
    code, out, err = await ugem(scene, "log", "search", *filters, "--json")
    assert (code, err) == (0, ""), err
    page: dict[str, Any] = json.loads(out)
    return page


def events(message: dict[str, Any], *names: str) -> list[dict[str, Any]]:
    return [e for e in message["events"] if not names or e["event"] in names]


async def test_each_message_history_is_found_after_it_left_the_queue(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ugem.maillog")
    node, hop_name = scene.node, f"{scene.hop.host}:{scene.hop.port}"
    plain = await sent(scene, ["x@example.org"], "plain")
    mixed = await sent(scene, ["nouser@refuse.example", "busy@refuse.example"], "mixed")
    stranger = await send_mail(node.config, "eve@stranger.example", ["v@gmail.com"], "127.0.0.7")
    assert stranger.code == replies.RELAY_DENIED.code
    await queued_until(node, mixed, lambda m: m.attempts == 1)  # busy@ deferred, nouser@ bounced
    scene.busy = False
    scene.clock.advance(5)  # the retry is due
    await scene.hop.wait_for(1)
    await left_queue(node, plain)
    await left_queue(node, mixed)

    page = await search(scene, "--queue-id", mixed)
    [found] = page["items"]
    assert (page["total"], page["next_cursor"]) == (1, None)
    assert (found["status"], found["sender"], found["message_id"]) == (
        "partly delivered", SENDER, "mixed@test"
    )  # fmt: skip
    assert [(e["event"], e.get("rcpt"), e.get("code")) for e in events(found)] == [
        ("accepted", None, None),
        ("bounced", "nouser@refuse.example", 550),
        ("deferred", "busy@refuse.example", 451),
        ("delivered", "busy@refuse.example", 250),
    ]
    retry = events(found, "delivered")[0]
    assert (retry["hop"], retry["attempt"], retry["delay"]) == (hop_name, 2, 5.0)
    assert retry["time"].startswith(DAY) and retry["time"].endswith("+05:00")

    page = await search(scene, "--from", SENDER.upper(), "--to", "@example.org")
    assert [m["queue_id"] for m in page["items"]] == [plain]
    assert events(page["items"][0], "delivered")[0]["text"] == "OK"

    page = await search(scene, "--from", "eve@stranger.example", "--since", DAY, "--until", DAY)
    [refused] = events(page["items"][0])
    assert page["items"][0]["status"] == "refused"
    assert refused["command"] == "RCPT" and refused["rcpt"] == "v@gmail.com"
    assert (refused["client_ip"], refused["why"]) == ("127.0.0.7", why(replies.RELAY_DENIED))
    assert (await search(scene, "--since", "2026-01-02"))["items"] == []

    async with api_client(node, "noc", Role.VIEWER) as api:
        answer = await api.get("/v1/messages", params={"from": SENDER, "limit": 1})
        assert answer.status_code == 200, answer.text
        first = answer.json()
        answer = await api.get(
            "/v1/messages", params={"from": SENDER, "cursor": first["next_cursor"]}
        )
        rest = answer.json()
    assert (first["total"], rest["next_cursor"]) == (2, None)
    assert [m["queue_id"] for m in first["items"] + rest["items"]] == [mixed, plain]  # newest first
    assert first["items"] == (await search(scene, "--queue-id", mixed))["items"]  # one logic

    [dsn] = (await search(scene, "--to", SENDER))["items"]  # the bounce of nouser@
    assert (dsn["sender"], dsn["status"]) == ("", "delivered")
    assert_mail_log_lines(caplog)


def assert_mail_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    """Each kind of line at INFO on ugem.maillog, with the fields README documents."""
    lines: dict[str, dict[str, Any]] = {}
    for record in caplog.records:
        if record.name == "ugem.maillog":
            assert record.levelno == logging.INFO
            lines.setdefault(record.getMessage(), record.__dict__["fields"])
    accepted = {"queue_id", "client_ip", "connection", "sender", "rcpts", "size", "message_id"}
    assert accepted | {"tls", "helo"} <= lines["accepted"].keys()
    outcome = {"queue_id", "rcpt", "sender", "hop", "code", "status", "text", "attempt"}
    for kind in ("delivered", "deferred", "bounced"):
        assert outcome | {"delay", "connect", "transfer"} <= lines[kind].keys()
    refused = {"client_ip", "connection", "command", "code", "status", "text", "why", "rcpt"}
    assert refused <= lines["refused"].keys()
    assert lines["accepted"]["connection"] == "mdai.gov.kz"
    assert lines["refused"]["connection"] == ""  # a stranger: no connection


async def test_the_history_says_who_held_and_deleted_a_message_and_why(scene: Scene) -> None:
    node = scene.node
    queue_id = await sent(scene, ["busy@refuse.example"], "kept")
    await queued_until(node, queue_id, lambda m: m.attempts == 1)
    async with api_client(node, "ops", Role.OPERATOR) as api:
        held = await api.post(f"/v1/queue/{queue_id}/hold", json={"reason": "looks odd"})
        assert held.status_code == 200, held.text
    code, _, err = await ugem(scene, "queue", "delete", queue_id, "--reason", "sender asked")
    assert (code, err) == (0, "")
    await left_queue(node, queue_id)

    [found] = (await search(scene, "--queue-id", queue_id))["items"]
    assert found["status"] == "deleted"
    changes = [(e["event"], e["actor"], e["reason"]) for e in events(found, "held", "deleted")]
    assert changes[0] == ("held", "api:ops", "looks odd")
    assert changes[1][0::2] == ("deleted", "sender asked")
    assert changes[1][1].startswith("cli:")
