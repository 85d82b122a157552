"""The gateway's blocklist state on the Overview page: each address on each list, and its incident.

`blocklist_state(reputation, incidents)` reads the reputation watch's state
as the last check left it (`ReputationService.report()`: nothing is looked
up for the page) and, for each (address, list) pair and for the bursts of
replies refusing the gateway's mail as blocklisted, the incident not closed
of its subject (`ugem.core.services.gateway.listing_subject`,
`BURST_SUBJECT`), if there is one, for the page to link to. It promises a
`GatewayState` whatever happens: a store that cannot be read leaves the
incidents out and says why in `problem`; the standings are the service's,
which never fails.
"""

from __future__ import annotations

from dataclasses import dataclass

from ugem.core.errors import StoreError
from ugem.core.services.gateway import BURST_SUBJECT, listing_subject
from ugem.core.services.incidents import IncidentService, IncidentState
from ugem.core.services.reputation import ReputationService, Standing


@dataclass(frozen=True)
class Row:
    standing: Standing
    incident: int | None  # the number of its incident not closed


@dataclass(frozen=True)
class GatewayState:
    configured: bool  # addresses and lists to check (`ReputationService.configured`)
    last_check: float | None  # None: not checked yet (by this process)
    rows: tuple[Row, ...]  # addresses outer, lists inner, as configured
    burst: int | None  # the incident not closed of blocklisted replies
    problem: str = ""  # why the incidents are left out


async def _open_incident(incidents: IncidentService, subject: str) -> int | None:
    """The incident of `subject` not closed (a subject has at most one), if any."""
    newest = await incidents.list(connection=subject, limit=1)
    return newest[0].id if newest and newest[0].state != IncidentState.CLOSED else None


async def blocklist_state(
    reputation: ReputationService, incidents: IncidentService
) -> GatewayState:
    report = reputation.report()
    known = (reputation.configured, report.last_check)
    try:
        rows = [
            Row(s, await _open_incident(incidents, listing_subject(s.address, s.zone)))
            for s in report.standings
        ]
        burst = await _open_incident(incidents, BURST_SUBJECT)
    except StoreError as exc:
        plain = tuple(Row(s, None) for s in report.standings)
        return GatewayState(*known, plain, None, str(exc))
    return GatewayState(*known, tuple(rows), burst)
