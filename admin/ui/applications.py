"""The Applications pages: the inbox by decision due, an application's page, its decision.

GET /ui/applications lists the pending applications ordered by the day their
decision is due (the earliest first, overdue ones marked), with the working
days left (`admin.ui.deadlines`), then the latest decided ones
(`DECIDED_SHOWN`, newest first): `ApplicationService.list`, the one behind
/v1/applications. GET /ui/applications/{id} shows the form as received, its
checks (the automatic ones, DNS readiness among them, and the operator's
findings), the decision and its reasons, the notice mailed about it (found in
the message index, `MessageService`, as /v1/messages finds it: from the
postmaster to the applicant's contacts since the decision; None when there is
no index or no notifier), and the application's history (its audit records:
a notice that could not be queued is one). POST /ui/applications/{id}/checks
and /decision (`operator`, as the API) answer the confirmation first
(`admin.ui.confirm`); the confirmed post makes ONE call of the service
(`admin.ui.application_actions`) and 303s back to the page. A decided
application has no form: the service's 409 answers a forged one.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from starlette.requests import Request
from starlette.responses import Response

from admin.api import OperatorServices
from admin.ui import application_actions as actions
from admin.ui.confirm import confirmation, confirmed
from admin.ui.console import Console, back_to
from admin.ui.deadlines import Deadline
from ugem.core import times
from ugem.core.errors import ConflictError
from ugem.core.services.applications import Application, AppState
from ugem.core.services.messages import MessageHistory, MessageQuery
from ugem.core.services.tokens import Role

DECIDED_SHOWN = 20  # decided applications listed, newest first
HISTORY = 20  # audit records shown on an application's page
STEPS = ("checks", "decision")  # the posts of an application's page
SLACK = 60.0  # seconds before the decision a notice is looked for from


async def sent_notices(services: OperatorServices, app: Application) -> list[MessageHistory] | None:
    """The notices mailed about `app`'s decision, found in the message index; None when
    there is nothing to look in (undecided, no index, no notifier, no contact)."""
    notifier, index = services.applications.notifier, services.messages
    if app.state == AppState.PENDING or notifier is None or index is None or not app.contacts:
        return None
    since = times.rfc3339(app.decided_at - SLACK)
    query = MessageQuery(
        sender=notifier.settings.postmaster, rcpt=app.contacts[0].email, since=since, limit=10
    )
    try:
        return (await index.search(query)).items
    except ConflictError:  # the index is off
        return None


def router(console: Console) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    services = console.services
    applications = services.applications

    @r.get("/applications")
    async def inbox(request: Request) -> Response:
        visitor = await console.signed_in(request)
        today, found = applications.today(), await applications.list()
        pending = sorted(
            (a for a in found if a.state == AppState.PENDING),
            key=lambda a: (a.decision_due, a.received_at),
        )
        decided = sorted(
            (a for a in found if a.state != AppState.PENDING), key=lambda a: -a.decided_at
        )
        calendar = applications.calendar
        return console.renderer.page(
            visitor,
            "applications.html",
            pending=[(a, Deadline.of(a, today, calendar)) for a in pending],
            decided=decided[:DECIDED_SHOWN],
            decided_total=len(decided),
        )

    @r.get("/applications/{app_id}")
    async def show_application(request: Request, app_id: str, done: str = "") -> Response:
        visitor = await console.signed_in(request)
        app = await applications.get(app_id)
        may_act = app.state == AppState.PENDING and visitor.may(Role.OPERATOR)
        return console.renderer.page(
            visitor,
            "application.html",
            app=app,
            deadline=Deadline.of(app, applications.today(), applications.calendar),
            may_act=may_act,
            checks_passed=bool(app.checks) and all(f.ok for f in app.checks),
            verdicts=actions.VERDICTS,
            verdict_of=actions.verdict_of,
            field=actions.FIELD,
            notices=await sent_notices(services, app),
            history=await services.audit.list(target=app.id, limit=HISTORY),
            done=done if done in STEPS else "",
        )

    @r.post("/applications/{app_id}/{step}")
    async def act(request: Request, app_id: str, step: str) -> Response:
        if step not in STEPS:
            raise HTTPException(404)
        visitor, form = await console.posted(request, Role.OPERATOR)
        assert visitor.token is not None  # admitted for a role
        app, words = await applications.get(app_id), visitor.words
        if step == "checks":
            if not confirmed(form):
                return confirmation(console, visitor, actions.asked_check(app, form, words))
            await applications.check(app.id, actions.findings(app, form), visitor.token.actor)
        else:
            chosen = actions.decision(form, words)
            if not confirmed(form):
                return confirmation(console, visitor, actions.asked_decision(app, form, words))
            reasons = actions.reasons(form)
            await applications.decide(app.id, chosen, reasons, visitor.token.actor)
        return back_to(f"{actions.page_of(app)}?done={step}")

    return r
