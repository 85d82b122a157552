"""Scenario: two next hops refuse the gateway as listed on Spamhaus, and the gateway opens an
incident on itself, before any DNSBL check could show it.

A node (on a FakeClock) relays two connections' mail: akimat.gov.kz's goes to
example.com, whose hop takes it; mdai.gov.kz's goes to example.org and
example.net, whose two hops answer every RCPT with Postfix's
`554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using
zen.spamhaus.org`. With `[reputation] burst_replies = 2` and `burst_domains
= 2`, the second refusal makes a burst: one gateway incident (kind
"gateway", subject gateway:blocklisted-replies, mode "alert") appears in GET
/v1/incidents, citing Spamhaus and naming mdai.gov.kz first (all the
rejections are its), akimat.gov.kz after it; the operators' alert arrives
over SMTP at `[admin] operators_address`. A further refusal opens no other
incident and sends no other alert.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from relay import replies
from tests.support.mail import read_notice
from tests.support.node import api_client, connect, node_config, running_node, send_mail
from tests.support.sink import Sink
from tests.support.waiting import eventually, eventually_read
from ugem.core.clock import FakeClock
from ugem.core.config import Config
from ugem.core.model import ConnState
from ugem.core.services.gateway import BURST_SUBJECT
from ugem.core.services.tokens import Role

CONN, CONN_IP = "mdai.gov.kz", "127.0.0.2"
OTHER, OTHER_IP = "akimat.gov.kz", "127.0.0.3"
OPERATORS = "noc@sts.test"
SPAMHAUS = "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org"


async def scene(
    tmp_path: Path, org: Sink, net: Sink, healthy: Sink, **sections: dict[str, Any]
) -> Config:
    hop = {sink: f"{sink.host}:{sink.port}" for sink in (org, net, healthy)}
    routes = {
        "example.org": hop[org],
        "example.net": hop[net],
        "example.com": hop[healthy],
        "sts.test": hop[healthy],  # the operators' mailbox
    }
    config, _ = node_config(
        tmp_path,
        node={"public_addresses": ["198.51.100.25"]},
        admin={"operators_address": OPERATORS},
        delivery={"routes": routes},
        reputation={"burst_replies": 2, "burst_domains": 2},
        **sections,
    )
    await connect(config, CONN, [CONN_IP])
    await connect(config, OTHER, [OTHER_IP])
    return config


async def send(config: Config, sender: str, rcpt: str, source: str) -> None:
    sent = await send_mail(config, sender, [rcpt], source)
    assert sent.ok, sent.text


async def gateway_incidents(api: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    """The gateway incidents of GET /v1/incidents, once there are `count` of them."""

    async def read() -> list[dict[str, Any]]:
        found = (await api.get("/v1/incidents")).json()["items"]
        return [i for i in found if i["kind"] == "gateway"]

    return await eventually_read(read, lambda found: len(found) >= count, 10, "gateway incident")


async def test_blocklisted_replies_from_two_hops_open_one_gateway_incident(
    tmp_path: Path,
) -> None:
    org, net, healthy = await Sink.start(), await Sink.start(), await Sink.start()
    refused: list[str] = []

    def spamhaus(address: str) -> str:
        refused.append(address)
        return SPAMHAUS

    org.rcpt_reply = net.rcpt_reply = spamhaus
    try:
        config = await scene(tmp_path, org, net, healthy)
        clock = FakeClock()
        async with running_node(config, clock) as node, api_client(node, "noc", Role.VIEWER) as api:
            watch = node.gateway
            assert watch is not None
            await send(config, f"a@{OTHER}", "friend@example.com", OTHER_IP)
            await healthy.wait_for(1)
            await eventually(lambda: OTHER in watch.tally.counts(clock.now()), 10, "its outcome")

            await send(config, f"b@{CONN}", "x@example.org", CONN_IP)
            await send(config, f"b@{CONN}", "y@example.net", CONN_IP)
            [incident] = await gateway_incidents(api, 1)
            assert (incident["connection"], incident["mode"], incident["action"]) == (
                BURST_SUBJECT,
                "alert",
                "blocklisted-replies",
            )
            assert incident["state"] == "open" and incident["blocklists"] == ["Spamhaus"]
            assert incident["addresses"] == ["198.51.100.25"]
            assert [s["connection"] for s in incident["suspects"]] == [CONN, OTHER]
            first = incident["suspects"][0]
            assert first["rejections"] == {"blocklisted": 2} and first["attempts"] == 2
            assert "lists cited: Spamhaus (2)" in incident["reason"]
            assert sorted(refused) == ["x@example.org", "y@example.net"]

            await healthy.wait_for(2)  # the operators' alert, over SMTP
            alert = healthy.messages[1]
            assert alert.rcpts == [OPERATORS]
            notice = read_notice(alert.data)
            assert notice.subject.startswith("[UGEM] gw.test: 2 blocklisted replies from 2 domains")
            assert f"  1. {CONN}: 2 of 2 delivery attempts rejected (blocklisted 2)" in notice.text

            await send(config, f"c@{CONN}", "z@example.org", CONN_IP)
            await eventually(lambda: len(refused) == 3, 10, "a third refusal")
            await eventually(
                lambda: watch.tally.counts(clock.now())[CONN].attempts == 3, 10, "counted"
            )
            assert len(await gateway_incidents(api, 1)) == 1
            assert len(healthy.messages) == 2  # no second alert
    finally:
        for sink in (org, net, healthy):
            await sink.stop()


async def test_spam_refused_as_listed_opens_the_gateway_incident_and_the_detector_suspends(
    tmp_path: Path,
) -> None:
    """The issue's scenario end to end: a connection's mail makes the next hops answer
    "blocklisted"; the gateway opens an incident naming that connection, and the detector
    (enforce) suspends it, the owner's reason naming the list: its next MAIL gets 451."""
    org, net, healthy = await Sink.start(), await Sink.start(), await Sink.start()
    refused: list[str] = []

    def spamhaus(address: str) -> str:
        refused.append(address)
        return SPAMHAUS

    org.rcpt_reply = net.rcpt_reply = spamhaus
    try:
        config = await scene(tmp_path, org, net, healthy, anomaly={"mode": "enforce"})
        clock = FakeClock()
        async with running_node(config, clock) as node, api_client(node, "noc", Role.VIEWER) as api:
            assert node.enforcer is not None and node.registry is not None
            for i in range(5):
                await send(config, f"b@{CONN}", f"x{i}@example.{('org', 'net')[i % 2]}", CONN_IP)
            await eventually(lambda: len(refused) == 5, 10, "five refusals")

            def refusals_counted() -> bool:
                traffic = node.enforcer.detector.traffic(CONN) if node.enforcer else None
                return traffic is not None and traffic[0].window(60).policy == 5

            await eventually(refusals_counted, 10, "the detector saw the refusals")
            [incident] = await gateway_incidents(api, 1)
            assert incident["suspects"][0]["connection"] == CONN
            clock.advance(11.0)  # the detector checks a connection at most every 10 s
            await send(config, f"b@{CONN}", "x5@example.org", CONN_IP)

            def suspended() -> bool:
                conn = node.registry.get(CONN) if node.registry else None
                return conn is not None and conn.state == ConnState.SUSPENDED

            await eventually(suspended, 10, "the connection suspended")
            conn = node.registry.get(CONN)
            assert conn is not None
            assert "refused as spam or by policy" in conn.state_reason
            assert "remote servers named blocklists: Spamhaus 5" in conn.state_reason
            again = await send_mail(config, f"b@{CONN}", ["x6@example.org"], CONN_IP)
            assert (again.code, again.text.split(" ", 1)[0]) == (
                replies.SUSPENDED.code,
                replies.SUSPENDED.status,
            )
    finally:
        for sink in (org, net, healthy):
            await sink.stop()
