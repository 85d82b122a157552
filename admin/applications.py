"""`/v1/applications`: receive, list (due, overdue), show, check and decide applications.

Reading needs `viewer`; recording, checking and deciding `operator`. The
deadline, the checks, the 30-day rule and the connection a decision creates
live in `ApplicationService`.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from admin.auth import Authority
from admin.schemas import ApplicationBody, ApplicationOut, ChecksBody, DecisionBody
from ugem.core.services.applications import Application, ApplicationService, AppState
from ugem.core.services.tokens import ApiToken, Role


def router(service: ApplicationService, auth: Authority) -> APIRouter:
    r = APIRouter(prefix="/applications", tags=["applications"])
    viewer = auth.require(Role.VIEWER)
    Operator = Annotated[ApiToken, Depends(auth.require(Role.OPERATOR))]

    def out(app: Application) -> ApplicationOut:
        return ApplicationOut.of(app, service.today())

    @r.post("", response_model=ApplicationOut, status_code=201)
    async def receive_application(body: ApplicationBody, token: Operator) -> ApplicationOut:
        return out(await service.receive(body.form(), token.actor))

    @r.get("", response_model=list[ApplicationOut], dependencies=[Depends(viewer)])
    async def list_applications(
        state: AppState | None = None,
        overdue: bool | None = None,
        domain: Annotated[str | None, Query(max_length=255)] = None,
    ) -> list[ApplicationOut]:
        return [out(a) for a in await service.list(state, overdue, domain)]

    @r.get("/{app_id}", response_model=ApplicationOut, dependencies=[Depends(viewer)])
    async def show_application(app_id: str) -> ApplicationOut:
        return out(await service.get(app_id))

    @r.post("/{app_id}/checks", response_model=ApplicationOut)
    async def check_application(app_id: str, body: ChecksBody, token: Operator) -> ApplicationOut:
        findings = [f.finding() for f in body.findings]
        return out(await service.check(app_id, findings, token.actor))

    @r.post("/{app_id}/decision", response_model=ApplicationOut)
    async def decide_application(
        app_id: str, body: DecisionBody, token: Operator
    ) -> ApplicationOut:
        app, _ = await service.decide(app_id, body.decision, body.reasons, token.actor)
        return out(app)

    return r
