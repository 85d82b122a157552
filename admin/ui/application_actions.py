"""What an operator may do to a pending application from its page: check it, decide it.

Both need `operator`, as the API's routes (`admin.applications`). `findings(app,
form)` reads the checks form: for each check already on the application a
field `check.<name>` ("" keeps what the automatic check finds, "ok" or
"failed" is the operator's finding, with the form's `note`; the page preselects
the operator's findings, `verdict_of`, so checking again keeps them); names
the application does not have are ignored. `reasons(form)` is the rejection's
reasons, one per line of `reasons`. `decision(form)` is the `Decision` asked;
anything else is a `UsageError` in the visitor's words, as is a rejection
without a reason (before it is confirmed: the service would refuse it too).
`asked_check` and `asked_decision` are what their confirmation pages say
(`admin.ui.confirm`); the confirmed post then makes ONE call of
`ApplicationService.check` or `.decide` with the token's actor, so the
rules, the audit and the notice are the service's.
"""

from __future__ import annotations

from urllib.parse import quote

from admin.ui.confirm import Confirmation
from admin.ui.i18n import Words
from admin.ui.render import BASE
from ugem.core.errors import UsageError
from ugem.core.services.applications import Application, Decision, Finding

FIELD = "check."  # the prefix of a check's field in the checks form
VERDICTS = ("ok", "failed")  # what an operator may find; "" keeps the automatic check
AUTO = "auto"  # the `by` of an automatic finding


def page_of(app: Application) -> str:
    return f"{BASE}applications/{quote(app.id)}"


def findings(app: Application, form: dict[str, str]) -> list[Finding]:
    """The operator's findings the checks form gives (none: run the checks again). A
    finding the form repeats as it was, without a new note, keeps its note."""
    note = form.get("note", "")
    before = {f.name: f for f in app.checks if f.by != AUTO}
    found = []
    for name in dict.fromkeys(f.name for f in app.checks):
        verdict = form.get(FIELD + name)
        if verdict not in VERDICTS:
            continue
        prior = before.get(name)
        same = prior is not None and prior.ok == (verdict == "ok") and not note
        found.append(Finding(name, verdict == "ok", prior.note if same and prior else note))
    return found


def verdict_of(finding: Finding) -> str:
    """What the checks form preselects for `finding`: the operator's verdict, or ""."""
    return "" if finding.by == AUTO else ("ok" if finding.ok else "failed")


def reasons(form: dict[str, str]) -> list[str]:
    return [line.strip() for line in form.get("reasons", "").splitlines() if line.strip()]


def decision(form: dict[str, str], words: Words) -> Decision:
    """The decision asked; a UsageError for another, or a rejection without reasons."""
    try:
        chosen = Decision(form.get("decision", ""))
    except ValueError:
        raise UsageError(words("application.bad_decision")) from None
    if chosen == Decision.REJECT and not reasons(form):
        raise UsageError(words("application.reasons_required"))
    return chosen


def _finding_fields(app: Application, form: dict[str, str]) -> dict[str, str]:
    given = {f.name: "ok" if f.ok else "failed" for f in findings(app, form)}
    return {FIELD + name: verdict for name, verdict in given.items()} | {
        "note": form.get("note", "")
    }


def asked_check(app: Application, form: dict[str, str], words: Words) -> Confirmation:
    found = findings(app, form)
    facts = [(f.name, words("check.ok" if f.ok else "check.failed")) for f in found]
    if found:
        facts.append((words("application.note"), form.get("note", "")))
    name = words("application.check")
    return Confirmation(
        "applications",
        words("confirm.title", action=name),
        words("application.confirm.check", number=app.number, domain=app.domain),
        facts,
        f"{page_of(app)}/checks",
        _finding_fields(app, form),
        words("confirm.yes", action=name),
        page_of(app),
        danger=False,
    )


def asked_decision(app: Application, form: dict[str, str], words: Words) -> Confirmation:
    chosen = decision(form, words)
    name = words(f"application.decide.{chosen.value}")
    given = reasons(form)
    facts = [(words("application.reasons"), "; ".join(given))] if given else []
    return Confirmation(
        "applications",
        words("confirm.title", action=name),
        words(
            f"application.confirm.{chosen.value}",
            number=app.number,
            org=app.org_name,
            domain=app.domain,
        ),
        facts,
        f"{page_of(app)}/decision",
        {"decision": chosen.value, "reasons": "\n".join(given)},
        words("confirm.yes", action=name),
        page_of(app),
        danger=chosen == Decision.REJECT,
    )
