"""The Incidents pages: open ones first, an incident's evidence, acknowledge and close.

GET /ui/incidents lists the open incidents, then the acknowledged ones, then
the latest closed (`CLOSED_SHOWN`), each newest first (`IncidentService.list`,
the one behind /v1/incidents). GET /ui/incidents/{n} shows one: what it is
about, its state and who moved it, every verdict's evidence (the reason, its
findings and the numbers behind them, as `Evidence.lines` reads them), a
gateway incident's addresses, lists and suspects, a connection's traffic of
the last day against its usual (`admin.ui.traffic`), and the moves its state
allows to an operator. POST /ui/incidents/{n}/{ack|close} takes an optional
comment, answers the confirmation first (`admin.ui.confirm`) and then makes
ONE call of `IncidentService` with the token's actor (the rules, the 409 of a
move that does not fit and the audit are the service's), then 303 back.
Both posts are admitted like every POST (CSRF, then `operator`).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from starlette.requests import Request
from starlette.responses import Response

from admin.ui.confirm import Confirmation, confirmation, confirmed
from admin.ui.console import Console, back_to
from admin.ui.i18n import Words
from admin.ui.render import BASE
from admin.ui.traffic import drawing
from ugem.core.services.incidents import Incident, IncidentKind, IncidentService, IncidentState
from ugem.core.services.tokens import Role

CLOSED_SHOWN = 20  # closed incidents listed, newest first
# a move, and the state it needs (None: any but closed)
MOVES: dict[str, IncidentState | None] = {"ack": IncidentState.OPEN, "close": None}


def fits(move: str, incident: Incident) -> bool:
    needs = MOVES[move]
    return incident.state == needs if needs else incident.state != IncidentState.CLOSED


def _asked(move: str, incident: Incident, comment: str, words: Words) -> Confirmation:
    page = f"{BASE}incidents/{incident.id}"
    name = words(f"incident.move.{move}")
    return Confirmation(
        "incidents",
        words("confirm.title", action=name),
        words(f"incident.confirm.{move}", id=incident.id, subject=incident.connection),
        [(words("incident.comment"), comment)],
        f"{page}/{move}",
        {"comment": comment},
        words("confirm.yes", action=name),
        page,
        danger=move == "close",
    )


async def _move(service: IncidentService, move: str, n: int, actor: str, comment: str) -> None:
    if move == "ack":
        await service.acknowledge(n, actor, comment)
    else:
        await service.close(n, actor, comment)


def router(console: Console) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    services = console.services
    incidents = services.incidents

    @r.get("/incidents")
    async def list_incidents(request: Request) -> Response:
        visitor = await console.signed_in(request)
        groups = [
            (state, await incidents.list(state, limit=limit))
            for state, limit in (
                (IncidentState.OPEN, 1000),
                (IncidentState.ACKNOWLEDGED, 1000),
                (IncidentState.CLOSED, CLOSED_SHOWN),
            )
        ]
        return console.renderer.page(visitor, "incidents.html", groups=groups)

    @r.get("/incidents/{number}")
    async def show_incident(request: Request, number: int, done: str = "") -> Response:
        visitor = await console.signed_in(request)
        incident = await incidents.get(number)
        traffic = None
        if incident.kind == IncidentKind.CONNECTION:
            traffic = await services.traffic.traffic(incident.connection, "day")
        moves = [m for m in MOVES if fits(m, incident) and visitor.may(Role.OPERATOR)]
        return console.renderer.page(
            visitor,
            "incident.html",
            incident=incident,
            moves=moves,
            done=done if done in MOVES else "",
            traffic=traffic,
            chart=None if traffic is None else drawing(traffic, visitor.words),
        )

    @r.post("/incidents/{number}/{move}")
    async def move_incident(request: Request, number: int, move: str) -> Response:
        if move not in MOVES:
            raise HTTPException(404)
        visitor, form = await console.posted(request, Role.OPERATOR)
        assert visitor.token is not None  # admitted for a role
        incident = await incidents.get(number)
        comment = form.get("comment", "")  # cut to the service's limit (admin.ui.forms)
        if not confirmed(form):
            return confirmation(console, visitor, _asked(move, incident, comment, visitor.words))
        await _move(incidents, move, incident.id, visitor.token.actor, comment)
        return back_to(f"{BASE}incidents/{incident.id}?done={move}")

    return r
