"""Scenario: every decision about an organisation reaches its contacts' mail server.

A node on a `FakeClock` relays to a sink standing in for the organisation's
mail server and the operators' (`[delivery] routes`). Through the admin API:
an application in Kazakh is checked and connected, the server is suspended
(the operators are alerted too), resumed, then disconnected at an agreed time
a day later: not a second before it (the due step the node runs is called
after moving the clock, nothing sleeps), and at it. Each notice arrives at the
sink through the relay's queue, from the postmaster, in Kazakh with English
below. A rejected application in Russian gets its notice with the reasons.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.support.mail import Notice, read_notice
from tests.support.node import api_client, node_config, running_node
from tests.support.sink import Sink
from ugem.core.clock import FakeClock
from ugem.core.services.tokens import Role

DOMAIN, OTHER = "akimat.gov.kz", "maslikhat.gov.kz"
POSTMASTER, NOC = "postmaster@sts.test", "noc@sts.test"
DAY = 86400.0
CONTACT = {"full_name": "Сәрсенбаева Әлия Нұрланқызы", "email": f"it@{DOMAIN}"}
FORM: dict[str, Any] = {
    "number": "0417",
    "domain": DOMAIN,
    "domain_owner": "Akimat",
    "servers": ["127.0.0.2"],
    "org_name": "Қала әкімдігі",
    "kind": "local-government",
    "contacts": [CONTACT],
    "language": "kk",
}


async def ok(api: httpx.AsyncClient, path: str, body: Any = None) -> dict[str, Any]:
    answer = await api.post(path, json=body if body is not None else {})
    assert answer.status_code in (200, 201), answer.text
    result: dict[str, Any] = answer.json()
    return result


class Inbox:
    """The sink's messages, read in order: `next(n)` waits for the next n."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.seen = 0

    async def next(self, count: int) -> list[Notice]:
        """The next `count` messages, checked as notices from the postmaster."""
        await self.sink.wait_for(self.seen + count, timeout=30)
        got = self.sink.messages[self.seen : self.seen + count]
        self.seen += count
        assert all(m.sender == POSTMASTER for m in got)
        assert len(self.sink.messages) == self.seen, "more notices than decisions"
        return [read_notice(m.data) for m in got]


def kazakh_then_english(notice: Notice) -> tuple[str, str]:
    kazakh, english = notice.parts
    assert kazakh.startswith("Құрметті әріптестер!"), kazakh
    assert english.startswith("Dear colleagues,"), english
    return kazakh, english


async def test_each_decision_is_mailed_through_the_queue_in_the_organisations_language(
    tmp_path: Path,
) -> None:
    sink = await Sink.start("127.0.0.1", 0)
    hop = f"127.0.0.1:{sink.port}"
    config, _ = node_config(
        tmp_path,
        admin={"postmaster": POSTMASTER, "operators_address": NOC},
        delivery={
            "routes": {DOMAIN: hop, OTHER: hop, "sts.test": hop},
            "dns_servers": ["127.0.0.1:9"],  # the DNS checks fail fast; the operator finds
            "dns_timeout": 0.2,
        },
    )
    clock, inbox = FakeClock(), Inbox(sink)
    try:
        async with running_node(config, clock) as node, api_client(node, "root", Role.ADMIN) as api:
            assert node.services is not None
            app = await ok(api, "/v1/applications", FORM)
            findings = [
                {"name": "mx", "ok": True, "note": "mx.akimat.gov.kz (operator)"},
                *({"name": name, "ok": True} for name in ("spf", "dkim", "dmarc")),
                {"name": "routable", "ok": True, "note": "over the STS channel"},
            ]
            await ok(api, f"/v1/applications/{app['id']}/checks", {"findings": findings})
            await ok(api, f"/v1/applications/{app['id']}/decision", {"decision": "connect"})
            [connected] = await inbox.next(1)
            assert sink.messages[-1].rcpts == [f"it@{DOMAIN}"]
            kazakh, english = kazakh_then_english(connected)
            assert "№ 0417 өтінім" in kazakh and "Measures taken" in english

            reason = "anomaly: 4000 messages in 5 minutes"
            await ok(api, f"/v1/connections/{DOMAIN}/suspend", {"reason": reason})
            notices = await inbox.next(2)
            by_rcpt = dict(zip([m.rcpts[0] for m in sink.messages[-2:]], notices, strict=True))
            kazakh, english = kazakh_then_english(by_rcpt[f"it@{DOMAIN}"])
            assert f"Себебі мен белгілері: {reason}" in kazakh  # noqa: RUF001
            assert "What to do:" in english
            assert by_rcpt[NOC].subject == f"[UGEM] {DOMAIN} suspended by api:root"

            await ok(api, f"/v1/connections/{DOMAIN}/resume", {"reason": "fixed"})
            [resumed] = await inbox.next(1)
            assert "Ескертпе: fixed" in kazakh_then_english(resumed)[0]

            at = clock.now() + DAY
            await ok(api, f"/v1/connections/{DOMAIN}/disconnect", {"effective_at": at})
            [scheduled] = await inbox.next(1)
            assert "disconnected" in kazakh_then_english(scheduled)[1]
            clock.advance(DAY - 1)
            assert await node.services.connections.disconnect_due() == []
            assert node.registry is not None and node.registry.by_domain(DOMAIN) is not None
            clock.advance(1)
            [done] = await node.services.connections.disconnect_due()
            assert done.state == "disconnected" and node.registry.by_domain(DOMAIN) is None
            [disconnected] = await inbox.next(1)
            assert "ажыратылды" in disconnected.subject

            other = FORM | {"domain": OTHER, "language": "ru", "number": "0418"}
            other["contacts"] = [CONTACT | {"email": f"it@{OTHER}"}]
            rejected = await ok(api, "/v1/applications", other)
            decision = {"decision": "reject", "reasons": ["нет технической возможности"]}
            await ok(api, f"/v1/applications/{rejected['id']}/decision", decision)
            [rejection] = await inbox.next(1)
            russian, _ = rejection.parts
            assert "  - нет технической возможности" in russian
    finally:
        await sink.stop()
