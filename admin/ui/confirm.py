"""The confirmation page every action of the console passes through before it acts.

An action's form posts first without `confirm=yes`; the page module answers
`confirmation(...)`: a page that says what will be done (`question`), repeats
what was filled in (`facts`: label, value), and posts the same fields again
to the same place with `confirm=yes` (the button `#confirm`), or goes back
(`back`). Only the confirmed post acts (`confirmed(form)`). Every value is
escaped by the template; the post carries the session's CSRF token like
every form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from starlette.responses import Response

from admin.ui.console import Console
from admin.ui.visitor import Visitor


@dataclass(frozen=True)
class Confirmation:
    section: str  # the navigation's current section
    title: str
    question: str
    facts: Sequence[tuple[str, str]]  # what was filled in, as label and value
    post_to: str  # the action's path, posted again with confirm=yes
    fields: dict[str, str]  # the form's fields, posted again
    yes: str  # the button's words
    back: str  # the path of "no, go back"
    danger: bool = True  # the button's colour: it changes something hard to undo


def confirmed(form: dict[str, str]) -> bool:
    return form.get("confirm") == "yes"


def confirmation(console: Console, visitor: Visitor, asked: Confirmation) -> Response:
    return console.renderer.page(visitor, "confirm.html", asked=asked, section=asked.section)
