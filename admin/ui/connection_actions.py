"""What an operator may do to a connection from its page: suspend, resume, disconnect.

Each `Action` names the role it needs, exactly as the API's routes
(`admin.connections`: suspend and resume `operator`, disconnect `admin`),
whether it fits the connection's state (a page shows only the actions that
fit and that the visitor's role allows), whether it needs a reason, and runs
as ONE call of `ConnectionService` with the token's actor, so the rules, the
audit log and the notices are the service's. A disconnection takes an
optional time (`at`, from a datetime-local field: Asia/Almaty time; empty:
now); a bad one, or a missing reason, is a `UsageError` in the visitor's words.
`asked(action, conn, form, words)` is what its confirmation page says
(`admin.ui.confirm`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from admin.ui.confirm import Confirmation
from admin.ui.i18n import Words
from admin.ui.render import BASE
from ugem.core import times
from ugem.core.errors import UsageError
from ugem.core.model import Connection, ConnState
from ugem.core.services.connections import ConnectionService
from ugem.core.services.tokens import Role

Run = Callable[[ConnectionService, str, dict[str, str], str, Words], Awaitable[Connection]]


@dataclass(frozen=True)
class Action:
    name: str
    role: Role
    fits: Callable[[Connection], bool]
    needs_reason: bool
    run: Run


def when(form: dict[str, str], words: Words) -> float | None:
    """The time of a disconnection (`at`), None for now."""
    text = form.get("at", "")
    if not text:
        return None
    try:
        return times.parse(text)
    except ValueError:
        raise UsageError(words("form.bad_time", value=text)) from None


async def _suspend(
    s: ConnectionService, conn_id: str, form: dict[str, str], actor: str, _: Words
) -> Connection:
    return await s.suspend(conn_id, form.get("reason", ""), actor)


async def _resume(
    s: ConnectionService, conn_id: str, form: dict[str, str], actor: str, _: Words
) -> Connection:
    return await s.resume(conn_id, form.get("reason", ""), actor)


async def _disconnect(
    s: ConnectionService, conn_id: str, form: dict[str, str], actor: str, words: Words
) -> Connection:
    return await s.disconnect(conn_id, form.get("reason", ""), actor, when(form, words))


def _resumable(conn: Connection) -> bool:
    return conn.state == ConnState.SUSPENDED or conn.disconnect is not None


ACTIONS: dict[str, Action] = {
    "suspend": Action(
        "suspend", Role.OPERATOR, lambda c: c.state == ConnState.CONNECTED, True, _suspend
    ),
    "resume": Action("resume", Role.OPERATOR, _resumable, False, _resume),
    "disconnect": Action(
        "disconnect", Role.ADMIN, lambda c: c.state != ConnState.DISCONNECTED, True, _disconnect
    ),
}


def check(action: Action, form: dict[str, str], words: Words) -> None:
    """UsageError for a form the action cannot take (before it is confirmed)."""
    if action.needs_reason and not form.get("reason"):
        raise UsageError(words("form.reason_required"))
    if action.name == "disconnect":
        when(form, words)


def asked(action: Action, conn: Connection, form: dict[str, str], words: Words) -> Confirmation:
    """The confirmation of `action` on `conn` with what `form` says."""
    name = words(f"action.{action.name}")
    facts = [(words("action.reason"), form.get("reason", ""))]
    fields = {"reason": form.get("reason", "")}
    if action.name == "disconnect":
        facts.append((words("confirm.when"), form.get("at") or words("confirm.now")))
        fields["at"] = form.get("at", "")
    page = f"{BASE}connections/{quote(conn.id)}"
    return Confirmation(
        "connections",
        words("confirm.title", action=name),
        words(f"confirm.{action.name}", org=conn.org_name, id=conn.id),
        facts,
        f"{page}/{action.name}",
        fields,
        words("confirm.yes", action=name),
        page,
        danger=action.name != "resume",
    )
