"""The Overview page's traffic per minute (from a real message index) and blocklist state.

The messages in and out of the last hour's whole minutes are drawn as two
charts with ids of their own and the last minute said in words; an index
turned off or unreadable is said so. The gateway's addresses are shown on
each list with their state and checks, linked to their open incidents.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from tests.support.admin import AdminApi, admin_api
from tests.support.console import signed_in
from ugem.core.clock import FakeClock
from ugem.core.events import Accepted, Event, Outcome
from ugem.core.maillog import entry_of
from ugem.core.message_index import MessageIndex
from ugem.core.services.gateway import listing_subject
from ugem.core.services.incidents import Action, Evidence, GatewayFacts
from ugem.core.services.reputation import Listing, Probe, ReputationService
from ugem.core.services.tokens import Role

ADDRESS, ZEN, COP = "203.0.113.9", "zen.spamhaus.org", "bl.spamcop.net"
REASON = "<b>Listed</b> by SBL"


class ListedOnZen:
    """Blocklists on which every address is listed on ZEN only."""

    async def check(self, addresses: Sequence[str], zones: Sequence[str]) -> list[Probe]:
        return [
            Probe(a, z, Listing.LISTED, REASON) if z == ZEN else Probe(a, z, Listing.CLEAR)
            for a in addresses
            for z in zones
        ]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AdminApi]:
    clock = FakeClock()
    watch = ReputationService(ListedOnZen(), [ADDRESS], [ZEN, COP], clock)
    index = tmp_path / "maillog.db"
    async with admin_api(tmp_path, clock, reputation=watch, message_index=index) as api:
        yield api


def write_traffic(path: Path, now: float) -> None:
    """Two messages accepted in the last whole minute, one before; three delivered."""
    accepted = [
        Accepted(now - ago, f"Q{ago}", "a.gov.kz", "192.0.2.1", "a@a.gov.kz", ("x@e.org",), 10)
        for ago in (3000, 50, 20)
    ]
    delivered = [
        Outcome(now - ago, "delivered", f"Q{ago}", "a.gov.kz", "192.0.2.1", "x@e.org", 250)
        for ago in (40, 10, 5)
    ]
    events: list[Event] = [*accepted, *delivered]
    index = MessageIndex(path)
    try:
        index.write([e for e in map(entry_of, events) if e is not None])
    finally:
        index.close()


async def test_the_traffic_of_the_last_hour_per_minute_in_and_out(api: AdminApi) -> None:
    assert api.services.messages is not None and api.services.messages.index is not None
    write_traffic(api.services.messages.index, api.clock.now())
    api.clock.advance(30)  # the minute under way is not counted
    async with signed_in(api, Role.VIEWER) as (client, _):
        page = (await client.get("/ui/")).text
    assert "Last minute (to 2026-01-01 05:00:00 +05:00 Asia/Almaty): 2 in, 3 out" in page
    assert 'aria-labelledby="rate-in-title rate-in-desc"' in page
    assert "3 messages accepted in the last hour, 2 in the last minute" in page
    assert '<desc id="rate-out-desc">3 recipients delivered in the last hour' in page


async def test_an_index_turned_off_or_unreadable_is_said(api: AdminApi) -> None:
    service = api.services.messages
    assert service is not None and service.index is not None
    service.index.write_bytes(b"not a database" * 100)
    async with signed_in(api, Role.VIEWER) as (client, _):
        unreadable = (await client.get("/ui/")).text
        service.index = None  # as [log] index_days = 0 makes it
        off = (await client.get("/ui/")).text
    assert "The message index cannot be read: message index" in unreadable
    assert "The message index is off ([log] index_days = 0)" in off
    assert "rate-in-title" not in off


async def test_the_gateways_addresses_on_each_list_with_the_open_incident(api: AdminApi) -> None:
    async with signed_in(api, Role.VIEWER) as (client, _):
        before = (await client.get("/ui/")).text
        await api.services.reputation.check()
        evidence = Evidence(api.clock.now(), Action.LISTED, f"listed on {ZEN}", {})
        facts = GatewayFacts((ADDRESS,), ZEN, (ZEN,))
        subject = listing_subject(ADDRESS, ZEN)
        incident, _ = await api.services.incidents.record_gateway(subject, evidence, "rep", facts)
        page = (await client.get("/ui/")).text
    assert "Not checked yet by this process." in before
    checked = "2026-01-01 05:00:00 +05:00 Asia/Almaty"
    assert f"last check {checked}" in page
    listed, clear = page.split(f"<td>{ADDRESS}</td>")[1:]
    assert f'<td>{ZEN}</td><td><span class="badge listing-listed">listed</span>' in listed
    assert "&lt;b&gt;Listed&lt;/b&gt; by SBL" in listed
    assert f'<a href="/ui/incidents/{incident.id}">' in listed
    assert f'<td>{COP}</td><td><span class="badge listing-clear">not listed</span>' in clear
    assert "/ui/incidents/" not in clear.split("</tr>")[0]


async def test_a_gateway_without_addresses_lists_or_index(tmp_path: Path) -> None:
    async with admin_api(tmp_path) as api, signed_in(api, Role.VIEWER) as (client, _):
        page = (await client.get("/ui/")).text
    assert "Not watched: no addresses ([node] public_addresses)" in page
    assert "The message index is off" in page  # an API without one
