"""`GET /v1/reputation`: the gateway's standing on the blocklists, as the service last saw it;
`GET /v1/reputation/complaints`: the feedback-loop complaints kept, filtered, with counts.

A viewer reads it (no token: 401; the roles' table in test_admin_roles
covers every role); nothing is looked up for the request. Before any check
it says what is watched and no standings; after a check, per address and
zone, the state, since when, the reason, the codes and the last check, the
same as `ReputationService.report()`; `/metrics` shows the gauges. A node's
API without a watch answers with no standings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.admin import AdminApi, admin_api
from tests.support.connections import plain
from tests.support.feedback import RFC5965_B1, YAHOO_STYLE
from ugem.core.clock import FakeClock
from ugem.core.services.reputation import Listing, Probe, ReputationService
from ugem.core.services.tokens import Role
from ugem.core.times import rfc3339
from ugem.core.workdays import ALMATY

ADDRESS, ZEN, COP = "203.0.113.9", "zen.spamhaus.org", "bl.spamcop.net"
REASON = "Listed by SBL, see https://check.spamhaus.org/sbl/query/SBL000000"


class OneListing:
    """Blocklists on which ADDRESS is listed on ZEN only, counting the checks."""

    def __init__(self) -> None:
        self.calls = 0

    async def check(self, addresses: Sequence[str], zones: Sequence[str]) -> list[Probe]:
        self.calls += 1
        return [
            Probe(a, z, Listing.LISTED, REASON, ("127.0.0.2",))
            if z == ZEN
            else Probe(a, z, Listing.CLEAR)
            for a in addresses
            for z in zones
        ]


@pytest.fixture
def lists() -> OneListing:
    return OneListing()


@pytest.fixture
async def api(tmp_path: Path, lists: OneListing) -> AsyncIterator[AdminApi]:
    clock = FakeClock()
    service = ReputationService(lists, [ADDRESS], [ZEN, COP], clock, interval=1800.0)
    async with admin_api(tmp_path, clock, reputation=service) as api:
        yield api


async def test_before_any_check_it_says_what_is_watched(api: AdminApi, lists: OneListing) -> None:
    answer = await api.call("GET", "/v1/reputation", Role.VIEWER)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "watching": False, "interval": 1800.0, "addresses": [ADDRESS], "zones": [ZEN, COP],
        "last_check": None, "listed": False, "standings": 0,
    }  # fmt: skip
    standings = await api.call("GET", "/v1/reputation/standings", Role.VIEWER)
    assert standings.json() == {"items": [], "total": 0, "next_cursor": None}
    assert lists.calls == 0  # reading never looks anything up
    assert (await api.call("GET", "/v1/reputation", None)).status_code == 401


async def test_after_a_check_each_address_and_zone_with_since_and_reason(
    api: AdminApi, lists: OneListing
) -> None:
    await api.services.reputation.check()
    first = api.clock.now()
    api.clock.advance(1800)
    await api.services.reputation.check()
    answer = await api.call("GET", "/v1/reputation", Role.VIEWER)
    body = answer.json()
    assert (body["last_check"], body["listed"]) == (rfc3339(first + 1800), True)
    assert body["standings"] == 2
    standings = [
        {
            "address": ADDRESS, "zone": ZEN, "state": "listed", "since": rfc3339(first),
            "checked_at": rfc3339(first + 1800), "reason": REASON, "codes": ["127.0.0.2"],
        },
        {
            "address": ADDRESS, "zone": COP, "state": "clear", "since": rfc3339(first),
            "checked_at": rfc3339(first + 1800), "reason": "", "codes": [],
        },
    ]  # fmt: skip
    whole = await api.call("GET", "/v1/reputation/standings", Role.VIEWER)
    assert whole.json() == {"items": standings, "total": 2, "next_cursor": None}
    first_page = (await api.call("GET", "/v1/reputation/standings?limit=1", Role.VIEWER)).json()
    assert (first_page["items"], first_page["total"]) == (standings[:1], 2)
    path = f"/v1/reputation/standings?limit=1&cursor={first_page['next_cursor']}"
    second_page = (await api.call("GET", path, Role.VIEWER)).json()
    assert second_page == {"items": standings[1:], "total": 2, "next_cursor": None}
    assert lists.calls == 2


async def test_metrics_show_the_listing_and_the_last_check(api: AdminApi) -> None:
    service = ReputationService(
        OneListing(), [ADDRESS], [ZEN, COP], api.clock, api.metrics, interval=1800.0
    )
    await service.check()
    text = (await api.client.get("/metrics")).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("ugem_reputation_")
    }
    assert samples == {
        ("ugem_reputation_listed", (("address", ADDRESS), ("zone", ZEN))): 1.0,
        ("ugem_reputation_listed", (("address", ADDRESS), ("zone", COP))): 0.0,
        ("ugem_reputation_last_check_timestamp_seconds", ()): api.clock.now(),
    }


async def test_without_a_watch_the_answer_has_no_standings(tmp_path: Path) -> None:
    async with admin_api(tmp_path) as api:
        body = (await api.call("GET", "/v1/reputation", Role.VIEWER)).json()
    assert body == {
        "watching": False, "interval": 3600.0, "addresses": [], "zones": [],
        "last_check": None, "listed": False, "standings": 0,
    }  # fmt: skip


# -- GET /v1/reputation/complaints -----------------------------------------------------------


async def test_complaints_listed_newest_first_with_filters_and_counts(tmp_path: Path) -> None:
    async with admin_api(tmp_path) as api:
        await api.store.add(plain("agency.gov.kz", "192.0.2.20"))
        await api.registry.sync()
        empty = await api.call("GET", "/v1/reputation/complaints", Role.VIEWER)
        assert empty.json() == {
            "received": 0, "kept": 0, "dropped": 0, "cap": 10_000,
            "items": [], "total": 0, "next_cursor": None,
        }  # fmt: skip
        assert (await api.call("GET", "/v1/reputation/complaints", None)).status_code == 401
        complaints = api.services.complaints
        first = await complaints.receive(YAHOO_STYLE, "203.0.113.7", "fbl@isp.test")
        api.clock.advance(3600)
        second = await complaints.receive(RFC5965_B1, "203.0.113.8", "")

        async def listed(query: str = "") -> list[int]:
            answer = await api.call("GET", f"/v1/reputation/complaints{query}", Role.VIEWER)
            assert answer.status_code == 200, answer.text
            return [c["id"] for c in answer.json()["items"]]

        assert await listed() == [2, 1]
        assert await listed("?connection=agency.gov.kz") == [1]
        assert await listed("?connection=") == [2]  # the untraced ones
        assert await listed("?limit=1") == [2]
        assert await listed(f"?since={int(second.received_at)}") == [2]
        start = dt.datetime.fromtimestamp(first.received_at + 1, ALMATY).replace(tzinfo=None)
        assert await listed(f"?since={start.isoformat()}") == [2]  # Almaty time
        body = (await api.call("GET", "/v1/reputation/complaints", Role.VIEWER)).json()
        assert body["items"][1] == first.to_dict() | {"received_at": rfc3339(first.received_at)}
        assert body["items"][1]["attributed_by"] == "dkim" and body["total"] == 2
        assert (body["received"], body["kept"], body["dropped"]) == (2, 2, 0)
        metrics = (await api.client.get("/metrics")).text
        assert 'ugem_complaints_total{connection="agency.gov.kz",feedback_type="abuse"} 1.0' in (
            metrics
        )
        for bad in ("?limit=0", "?limit=1001", "?since=yesterday"):
            answer = await api.call("GET", f"/v1/reputation/complaints{bad}", Role.VIEWER)
            assert answer.status_code == 422, bad
