"""Scenario: a feedback loop complains about mail the gateway relayed, and it is traced.

mdai.gov.kz's server (127.0.0.2) sends a message through a running node to
example.org (the sink); a mailbox provider's feedback loop (127.0.0.9) mails an
ARF report about it, the relayed message inside, to `[reputation]
fbl_address` with Python's smtplib. The node answers 250 with the complaint's
number, never relays the report (the sink gets nothing more, the queue is
empty), and the complaint is in `GET /v1/reputation/complaints` and in
`ugem reputation complaints --json` alike, traced to mdai.gov.kz by the queue
id of the gateway's Received: field, counted in `/metrics` and announced on the
node's bus. A node whose fbl_address is empty answers that address as any
other of its own domain: 550 5.1.1, no local mailboxes.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from relay import replies
from tests.support.clients import Sent, smtplib_send
from tests.support.feedback import arf
from tests.support.node import (
    api_client,
    node_config,
    node_relaying_to,
    running_node,
    send_mail,
    smtp_address,
)
from tests.support.sink import Sink
from ugem.cli import main
from ugem.core.config import Config
from ugem.core.events import Complained, Event, Subscription
from ugem.core.services.tokens import Role

FBL = "fbl@gw.test"
LOOP = "127.0.0.9"  # the feedback loop's server: no connection's


async def complain(config: Config, report: bytes, rcpt: str = FBL) -> Sent:
    host, port = smtp_address(config)
    return await asyncio.to_thread(
        smtplib_send, host, port, "fbl-reports@isp.test", [rcpt], report, LOOP
    )


async def test_a_complaint_is_traced_listed_and_never_relayed(
    tmp_path: Path, sink: Sink, capsys: pytest.CaptureFixture[str]
) -> None:
    config, path = await node_relaying_to(tmp_path, sink, reputation={"fbl_address": FBL})
    async with running_node(config) as node:
        events = node.bus.subscribe("test")
        sent = await send_mail(config, "news@mdai.gov.kz", ["reader@example.org"], "127.0.0.2")
        assert sent.ok
        queue_id = sent.text.rsplit(" ", 1)[-1]
        [relayed] = await sink.wait_for(1)

        answer = await complain(config, arf(relayed.data, Source_IP="198.51.100.25"))
        assert (answer.code, answer.text) == (250, str(replies.complaint_kept(1))[4:])

        async with api_client(node, "noc", Role.VIEWER) as api:
            body = (await api.get("/v1/reputation/complaints")).json()
            queue = (await api.get("/v1/queue")).json()
            metrics = (await api.get("/metrics")).text
        [complaint] = body["items"]
        assert (complaint["connection"], complaint["attributed_by"]) == ("mdai.gov.kz", "queue_id")
        assert complaint["queue_id"] == queue_id
        assert complaint["evidence"] == f"queue id {queue_id} from 127.0.0.2"
        assert (complaint["client_ip"], complaint["sender"]) == (LOOP, "fbl-reports@isp.test")
        assert (complaint["format"], complaint["feedback_type"]) == ("arf", "abuse")
        assert complaint["source_ip"] == "198.51.100.25"
        assert (queue["items"], queue["total"]) == ([], 0)  # nothing of the report was queued
        assert 'ugem_complaints_total{connection="mdai.gov.kz",feedback_type="abuse"} 1.0' in (
            metrics
        )
        seen = [e for e in _drain(events) if isinstance(e, Complained)]
        assert [(e.connection, e.complaint) for e in seen] == [("mdai.gov.kz", 1)]

        argv = ["--config", str(path), "reputation", "complaints", "--json"]
        assert await asyncio.to_thread(main, argv) == 0
        assert json.loads(capsys.readouterr().out) == body  # one service, one answer

        await asyncio.sleep(0.3)  # several scans of the queue: still nothing more
        assert len(sink.messages) == 1


def _drain(subscription: Subscription) -> list[Event]:
    found = []
    while not subscription.queue.empty():
        found.append(subscription.queue.get_nowait())
    return found


async def test_an_empty_fbl_address_is_no_mailbox(tmp_path: Path) -> None:
    config, _ = node_config(tmp_path)
    assert config.reputation.fbl_address == ""
    async with running_node(config):
        answer = await complain(config, arf(b"From: <a@mdai.gov.kz>\r\n\r\nx"))
    assert (answer.code, answer.text) == (550, str(replies.NO_LOCAL_MAILBOX)[4:])
