"""`/v1/applications`: receive, list (due, overdue), show, check and decide applications.

Reading needs `viewer`; recording, checking and deciding `operator`. The
deadline, the checks, the 30-day rule and the connection a decision creates
live in `ApplicationService`. The list is a page by id (`admin.pages`).
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from admin.auth import Authority
from admin.errors import problems
from admin.pages import DEFAULT_LIMIT, Cursor, Limit, PageOut, page_out
from admin.schemas import ApplicationBody, ApplicationOut, ChecksBody, DecisionBody
from ugem.core.services.applications import Application, ApplicationService, AppState
from ugem.core.services.tokens import ApiToken, Role


def router(service: ApplicationService, auth: Authority) -> APIRouter:
    r = APIRouter(prefix="/applications", tags=["applications"])
    viewer = auth.require(Role.VIEWER)
    Operator = Annotated[ApiToken, Depends(auth.require(Role.OPERATOR))]

    def out(app: Application) -> ApplicationOut:
        return ApplicationOut.of(app, service.today())

    @r.post(
        "",
        response_model=ApplicationOut,
        status_code=201,
        summary="Record an application",
        responses=problems(409),
    )
    async def receive_application(body: ApplicationBody, token: Operator) -> ApplicationOut:
        """An organisation's application to connect, as received; its decision is due five
        working days later. 409: the domain is connected, or may not apply again yet."""
        return out(await service.receive(body.form(), token.actor))

    @r.get(
        "",
        response_model=PageOut[ApplicationOut],
        dependencies=[Depends(viewer)],
        summary="List applications",
    )
    async def list_applications(
        state: AppState | None = None,
        overdue: bool | None = None,
        domain: Annotated[str | None, Query(max_length=255)] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> PageOut[ApplicationOut]:
        """Applications by id, of one state, overdue or not, and domain if given."""
        found = await service.page(state, overdue, domain, limit, cursor)
        return page_out(found, out)

    @r.get(
        "/{app_id}",
        response_model=ApplicationOut,
        dependencies=[Depends(viewer)],
        summary="Show an application",
        responses=problems(404),
    )
    async def show_application(app_id: str) -> ApplicationOut:
        """One application: the form, its checks, its deadline and decision."""
        return out(await service.get(app_id))

    @r.post(
        "/{app_id}/checks",
        response_model=ApplicationOut,
        summary="Record an application's checks",
        responses=problems(404, 409),
    )
    async def check_application(app_id: str, body: ChecksBody, token: Operator) -> ApplicationOut:
        """The operator's findings, with the DNS readiness checks run now. 409: it is
        decided already."""
        findings = [f.finding() for f in body.findings]
        return out(await service.check(app_id, findings, token.actor))

    @r.post(
        "/{app_id}/decision",
        response_model=ApplicationOut,
        summary="Decide an application",
        responses=problems(404, 409),
    )
    async def decide_application(
        app_id: str, body: DecisionBody, token: Operator
    ) -> ApplicationOut:
        """Approve (the connection is made) or refuse (with the reasons); the organisation
        is notified. 409: decided already, or the connection cannot be made."""
        app, _ = await service.decide(app_id, body.decision, body.reasons, token.actor)
        return out(app)

    return r
