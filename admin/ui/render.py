"""The console's pages: Jinja2 templates (package data) rendered with autoescape on.

`Renderer.page(visitor, name, status, **values)` renders `templates/<name>`
with the visitor's words (`t`), CSRF token, token and the values given, and
answers it as HTML, setting the session cookie when the session is new. Every
value from the data goes through autoescape; the templates mark nothing
safe but the server's own SVG (`admin.ui.chart`). Filters: `when` writes a
moment (Unix time) in Asia/Almaty with the zone shown
(`ugem.core.times`), `age` a duration in the visitor's words. An unknown
template or a missing value is a bug (`StrictUndefined`).
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.responses import HTMLResponse

from admin.ui import csrf
from admin.ui.i18n import LANGUAGES, NAMES, Words
from admin.ui.session import Sessions
from admin.ui.visitor import Visitor
from ugem.core import times

BASE = "/ui/"
ZONE = "Asia/Almaty"


def when(ts: float) -> str:
    """A moment as Almaty time with the zone: 2026-12-07 15:04:05 +05:00 Asia/Almaty."""
    if not ts:
        return "—"
    moment = times.almaty(ts)
    return f"{moment:%Y-%m-%d %H:%M:%S} {moment.isoformat()[-6:]} {ZONE}"


def age(seconds: float, words: Words) -> str:
    """A duration as the largest two units (days, hours, minutes, seconds)."""
    left, parts = max(0, int(seconds)), list[str]()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(words(f"age.{unit}", n=left // size))
            left %= size
    return " ".join(parts[:2])


class Renderer:
    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
        self.env = Environment(
            loader=PackageLoader("admin.ui", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["when"] = when

    def page(
        self, visitor: Visitor, name: str, status: int = 200, /, **values: Any
    ) -> HTMLResponse:
        words = visitor.words
        context = {
            "t": words,
            "lang": words.lang,
            "languages": [(code, NAMES[code]) for code in LANGUAGES],
            "base": BASE,
            "csrf_field": csrf.FIELD,
            "csrf": visitor.csrf,
            "me": visitor.token,
            "age": lambda seconds: age(seconds, words),
            "zone": ZONE,
            "here": visitor.here,
        }
        html = self.env.get_template(name).render(context | values)
        response = HTMLResponse(html, status_code=status)
        if visitor.fresh:
            self.sessions.attach(response, visitor.session, visitor.secure)
        return response
