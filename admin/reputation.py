"""`/v1/reputation`: the gateway's standing on the public DNS blocklists, as last checked.

Reading needs `viewer`. The answer is `ReputationService.report()` as it is
(nothing is looked up for the request): per address of `[node]
public_addresses` and zone of `[reputation] dnsbl_zones`, the state (listed,
clear, unusable, unknown), since when, the list's reason and the last check's
time, and whether this process watches at all (with `--workers N`, worker
0 does; the others answer with no standings). Never raises.
"""

from fastapi import APIRouter, Depends

from admin.auth import Authority
from admin.schemas import ReputationOut
from ugem.core.services.reputation import ReputationService
from ugem.core.services.tokens import Role


def router(service: ReputationService, auth: Authority) -> APIRouter:
    r = APIRouter(prefix="/reputation", tags=["reputation"])

    @r.get("", response_model=ReputationOut, dependencies=[Depends(auth.require(Role.VIEWER))])
    async def show_reputation() -> ReputationOut:
        return ReputationOut.of(service.report(), service.watching, service.interval)

    return r
