"""`GET /v1/reputation`: the gateway's standing on the blocklists, as the service last saw it.

A viewer reads it (no token: 401; the roles' table in test_admin_roles
covers every role); nothing is looked up for the request. Before any check
it says what is watched and no standings; after a check, per address and
zone, the state, since when, the reason, the codes and the last check, the
same as `ReputationService.report()`; `/metrics` shows the gauges. A node's
API without a watch answers with no standings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.admin import AdminApi, admin_api
from ugem.core.clock import FakeClock
from ugem.core.services.reputation import Listing, Probe, ReputationService
from ugem.core.services.tokens import Role

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
        "last_check": None, "listed": False, "standings": [],
    }  # fmt: skip
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
    assert (body["last_check"], body["listed"]) == (first + 1800, True)
    assert body["standings"] == [
        {
            "address": ADDRESS, "zone": ZEN, "state": "listed", "since": first,
            "checked_at": first + 1800, "reason": REASON, "codes": ["127.0.0.2"],
        },
        {
            "address": ADDRESS, "zone": COP, "state": "clear", "since": first,
            "checked_at": first + 1800, "reason": "", "codes": [],
        },
    ]  # fmt: skip
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
        "last_check": None, "listed": False, "standings": [],
    }  # fmt: skip
