"""Scenario: a running node watches its own address on the DNS blocklists, by its clock.

A private dnsmasq serves two test blocklists: bl.listing.test lists the
gateway's address (127.0.0.2, with a TXT reason), clean.test does not. A
node on a `FakeClock` with that address in `[node] public_addresses` checks
at start: one WARNING `reputation_changed` line for the listing, the state
in `/v1/reputation` (a viewer reads it) and in `/metrics`. When the clock
has moved on by `[reputation] interval` it checks again (the last check
moves, `since` stays, no new warning). A node without zones, and worker 1 of
a node that has them, do not watch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from relay.reputation.dnsbl import query_name
from tests.support.node import api_client, node_config, running_node
from tests.support.waiting import eventually
from ugem.core.clock import FakeClock
from ugem.core.config import Config
from ugem.core.services.tokens import Role
from ugem.core.times import rfc3339
from ugem.node import Node

GATEWAY = "198.51.100.25"
LISTING, CLEAN = "bl.listing.test", "clean.test"
REASON = "Listed: 5 spam traps hit in 24 h"
INTERVAL = 900.0


def watching_node(tmp_path: Path, dns: Any) -> Config:
    config, _ = node_config(
        tmp_path,
        node={"public_addresses": [GATEWAY]},
        delivery={"dns_servers": [dns.address], "dns_timeout": 2.0},
        reputation={"dnsbl_zones": [LISTING, CLEAN], "interval": INTERVAL, "timeout": 1.0},
    )
    return config


def warnings(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        r.__dict__["fields"]
        for r in caplog.records
        if getattr(r, "event", None) == "reputation_changed" and r.levelno == logging.WARNING
    ]


def listed_gauge(metrics_text: str) -> dict[str, float]:
    return {
        s.labels["zone"]: s.value
        for family in text_string_to_metric_families(metrics_text)
        for s in family.samples
        if s.name == "ugem_reputation_listed" and s.labels["address"] == GATEWAY
    }


async def test_the_node_checks_at_start_and_again_each_interval(
    tmp_path: Path, dns_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ugem.core.services.reputation")
    dns = dns_server(
        a={query_name(GATEWAY, LISTING): ["127.0.0.2"]},
        txt={query_name(GATEWAY, LISTING): REASON},
    )
    clock = FakeClock()
    started = clock.now()
    async with running_node(watching_node(tmp_path, dns), clock) as node:
        service = node.reputation
        assert service is not None
        await eventually(lambda: service.report().last_check == started, what="first check")
        [warned] = warnings(caplog)
        assert (warned["address"], warned["zone"], warned["before"], warned["after"]) == (
            GATEWAY, LISTING, "", "listed"
        )  # fmt: skip
        assert warned["reason"] == REASON and warned["codes"] == "127.0.0.2"

        async with api_client(node, "noc-viewer", Role.VIEWER) as api:
            body = (await api.get("/v1/reputation")).json()
            standings = (await api.get("/v1/reputation/standings")).json()["items"]
            metrics = (await api.get("/metrics")).text
        assert (body["watching"], body["interval"], body["listed"]) == (True, INTERVAL, True)
        since = rfc3339(started)
        assert [(s["zone"], s["state"], s["since"], s["reason"]) for s in standings] == [
            (LISTING, "listed", since, REASON), (CLEAN, "clear", since, ""),
        ]  # fmt: skip
        assert listed_gauge(metrics) == {LISTING: 1.0, CLEAN: 0.0}

        clock.advance(INTERVAL)
        await eventually(lambda: service.report().last_check == started + INTERVAL, 10, "again")
        again = service.report().standings[0]
        assert (again.state, again.since, again.checked_at) == (
            "listed", started, started + INTERVAL
        )  # fmt: skip
        assert len(warnings(caplog)) == 1  # no change, no new warning
    assert dns.log_text().count(f"query[A] {query_name(GATEWAY, LISTING)}") == 2


async def test_no_zones_or_another_worker_no_watch(tmp_path: Path, dns_server: Any) -> None:
    dns = dns_server()
    for where in ("plain", "w1"):
        (tmp_path / where).mkdir()
    plain, _ = node_config(tmp_path / "plain", node={"public_addresses": [GATEWAY]})
    async with running_node(plain) as node:  # the tests' default: no zones
        assert node.reputation is not None and not node.reputation.configured
        assert not node.reputation.watching
    worker = Node(watching_node(tmp_path / "w1", dns), FakeClock(), worker=1)
    await worker.start()
    try:
        assert worker.reputation is not None and worker.reputation.configured
        assert not worker.reputation.watching and worker.reputation.report().last_check is None
    finally:
        await worker.stop(grace=2.0)
    assert "bl.listing.test" not in dns.log_text()
