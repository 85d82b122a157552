"""The Queue page: the summary by destination and age, a search, hold / release / delete.

GET /ui/queue takes the API's filter as its query (`state`, `connection`,
`sender`, `recipient`, `domain`, `older_than`, `newer_than`: the
`ugem.core.queue_filter.Criteria` of GET /v1/queue; a field left empty is not
given) and shows what it selects: the summary by destination domain (or,
`by=connection`, origin connection) in age buckets (`QueueService.summary`,
as `ugem queue summary`), and a page of the messages, oldest first
(`QueueService.page`). A bad field is the service's `UsageError` (422, named).
POST /ui/queue/actions (`operator`, as POST /v1/queue/actions) holds, releases
or deletes what the filter selects, with a reason: its confirmation page
says how many messages it would change (the service's dry run, which only
counts); the confirmed post makes ONE call of `QueueService.bulk` (audited
once, with the filter and the count) and 303s back to the same search with
how many were changed. The page offers it only for a filter that names
something: acting on the whole queue is for the CLI or the API's `all`.
"""

from __future__ import annotations

from dataclasses import fields
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from admin.ui.confirm import Confirmation, confirmation, confirmed
from admin.ui.console import Console, back_to
from admin.ui.i18n import Words
from admin.ui.render import BASE
from ugem.core.errors import UsageError
from ugem.core.queue_filter import STATES, Criteria
from ugem.core.queue_shape import BY, DEFAULT_TOP
from ugem.core.services.mailqueue import Verb
from ugem.core.services.tokens import Role

LIMIT = 50  # messages listed per page
VERBS: tuple[Verb, ...] = ("hold", "release", "delete")  # the page's actions
FIELDS = tuple(f.name for f in fields(Criteria))


def criteria_of(values: dict[str, str]) -> Criteria:
    """The filter of a query or a form: each field stripped; empty is not given."""
    given = {name: values.get(name, "").strip()[:320] for name in FIELDS}
    return Criteria(**{name: value or None for name, value in given.items()})


def query_of(criteria: Criteria, **extra: str) -> str:
    """The filter (and `extra`) as a query string, for links back to the same search."""
    return urlencode(criteria.given() | {k: v for k, v in extra.items() if v})


def _verb(form: dict[str, str], words: Words) -> Verb:
    for verb in VERBS:
        if form.get("action") == verb:
            return verb
    raise UsageError(words("queue.bad_action"))


def _asked(verb: Verb, criteria: Criteria, reason: str, count: int, words: Words) -> Confirmation:
    name = words(f"queue.action.{verb}")
    facts = [(words("queue.filter"), criteria.describe()), (words("action.reason"), reason)]
    back = f"{BASE}queue?{query_of(criteria)}"
    return Confirmation(
        "queue",
        words("confirm.title", action=name),
        words(f"queue.confirm.{verb}", n=count),
        facts,
        f"{BASE}queue/actions",
        criteria.given() | {"action": verb, "reason": reason},
        words("confirm.yes", action=name),
        back,
        danger=verb != "release",
    )


def router(console: Console) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    queue = console.services.queue

    @r.get("/queue")
    async def show_queue(
        request: Request,
        by: str = "destination",
        cursor: str | None = None,
        done: str = "",
        n: int = 0,
    ) -> Response:
        visitor = await console.signed_in(request)
        criteria = criteria_of(dict(request.query_params))
        by = by if by in BY else "destination"
        return console.renderer.page(
            visitor,
            "queue.html",
            criteria=criteria,
            given=criteria.given(),
            states=STATES,
            by=by,
            shape=await queue.summary(criteria, by, DEFAULT_TOP),
            page=await queue.page(criteria, LIMIT, cursor),
            operator=visitor.may(Role.OPERATOR),
            verbs=VERBS if visitor.may(Role.OPERATOR) and criteria.given() else (),
            here_query=query_of(criteria, by=by),
            done=done if done in VERBS else "",
            n=n,
        )

    @r.post("/queue/actions")
    async def act(request: Request) -> Response:
        visitor, form = await console.posted(request, Role.OPERATOR)
        assert visitor.token is not None  # admitted for a role
        words, criteria = visitor.words, criteria_of(form)
        verb, reason = _verb(form, words), form.get("reason", "")
        if not criteria.given():
            raise UsageError(words("queue.filter_required"))
        if not reason:
            raise UsageError(words("form.reason_required"))
        if not confirmed(form):
            count = await queue.bulk(verb, criteria, visitor.token.actor, reason, dry_run=True)
            return confirmation(console, visitor, _asked(verb, criteria, reason, count, words))
        count = await queue.bulk(verb, criteria, visitor.token.actor, reason)
        return back_to(f"{BASE}queue?{query_of(criteria, done=verb, n=str(count))}")

    return r
