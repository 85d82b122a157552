"""The catalogues: every key in kk, ru and en with the same placeholders; every key used exists."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from admin.ui.application_actions import VERDICTS
from admin.ui.applications import STEPS
from admin.ui.audit import FIELDS as AUDIT_FIELDS
from admin.ui.connection_actions import ACTIONS
from admin.ui.i18n import LANGUAGES, Catalogues, choose, difference
from admin.ui.incidents import MOVES
from admin.ui.queue import FIELDS as QUEUE_FIELDS
from admin.ui.queue import VERBS
from admin.ui.rate import WAYS
from ugem.core.model import ConnState, OrgKind
from ugem.core.queue_shape import BY
from ugem.core.services.applications import AppState, Channel, Decision
from ugem.core.services.incidents import Action, IncidentKind, IncidentState, Mode
from ugem.core.services.overrides import OverrideKind
from ugem.core.services.reputation import Listing
from ugem.core.services.status import STATES
from ugem.core.services.tokens import Role
from ugem.core.services.traffic import SPANS
from ugem.core.services.traffic import Status as TrafficStatus

LITERAL = re.compile(r"""(?:\bt|words)\(\s*["']([a-z_.0-9-]+)["']""")
UI = resources.files("admin.ui")


def used_keys() -> set[str]:
    """Keys named literally in the templates and the console's modules."""
    sources = [p for p in (UI / "templates").iterdir() if p.name.endswith(".html")]
    sources += [p for p in UI.iterdir() if p.name.endswith(".py")]
    found = {key for p in sources for key in LITERAL.findall(p.read_text(encoding="utf-8"))}
    return {key for key in found if not key.endswith(".")}  # a prefix: see built_keys


def built_keys() -> set[str]:
    """Keys the templates build from a value (`t("state." ~ c.state.value)`)."""
    keys = {f"state.{s.value}" for s in ConnState} | {f"kind.{k.value}" for k in OrgKind}
    keys |= {f"role.{r.value}" for r in Role} | {f"queue.{s}" for s in STATES}
    keys |= {f"override.kind.{k.value}" for k in OverrideKind}
    keys |= {f"override.status.{s}" for s in ("in_force", "to_come", "ended", "cancelled")}
    keys |= {f"worker.state.{s}" for s in ("ready", "degraded", "not_ready", "draining")}
    keys |= {f"{p}.{a}" for p in ("action", "done", "confirm") for a in ACTIONS}
    keys |= {f"age.{u}" for u in ("d", "h", "min", "s")}
    keys |= {f"traffic.status.{s.value}" for s in TrafficStatus}
    keys |= {f"incidents.group.{s.value}" for s in IncidentState}
    keys |= {f"incident.state.{s.value}" for s in IncidentState}
    keys |= {f"incident.kind.{k.value}" for k in IncidentKind}
    keys |= {f"incident.mode.{m.value}" for m in Mode} | {f"incident.action.{a}" for a in Action}
    keys |= {f"incident.{p}.{m}" for p in ("move", "confirm", "done") for m in MOVES}
    keys |= {f"traffic.{p}.{s}" for p in ("span", "title", "total") for s in SPANS}
    keys |= {f"application.state.{s.value}" for s in AppState}
    keys |= {f"application.channel.{c.value}" for c in Channel}
    keys |= {f"application.{p}.{d.value}" for p in ("decide", "confirm") for d in Decision}
    keys |= {f"application.done.{s}" for s in STEPS} | {f"check.{v}" for v in VERDICTS}
    keys |= {f"queue.{p}.{v}" for p in ("action", "confirm", "done") for v in VERBS}
    keys |= {f"queue.field.{f}" for f in QUEUE_FIELDS} | {f"queue.by.{b}" for b in BY}
    keys |= {f"audit.field.{f}" for f in AUDIT_FIELDS}
    keys |= {f"listing.{s.value}" for s in Listing} | {f"rate.summary.{w}" for w in WAYS}
    return keys | {"error.404", "error.405", "error.500", "error.other"}


def test_every_key_is_in_all_three_languages() -> None:
    catalogues = Catalogues.load()
    keys = [set(catalogues.texts[lang]) for lang in LANGUAGES]
    assert keys[0] == keys[1] == keys[2]
    assert all(text.strip() for lang in LANGUAGES for text in catalogues.texts[lang].values())


def test_every_key_the_console_uses_exists() -> None:
    used = used_keys() | built_keys()
    assert len(used) > 100
    missing = used - set(Catalogues.load().texts["en"])
    assert not missing


def test_a_missing_key_or_other_placeholders_are_named() -> None:
    texts = {"kk": {"a": "{n} x"}, "ru": {"a": "{n} y"}, "en": {"a": "{n} z", "b": "b"}}
    assert difference(texts) == "kk lacks b"
    texts = {"kk": {"a": "{m}"}, "ru": {"a": "{n}"}, "en": {"a": "{n}"}}
    assert difference(texts) == "kk: 'a' has other placeholders than ru"


def test_words_fill_placeholders() -> None:
    words = Catalogues.load().words("en")
    assert words("connections.found", n=3) == "Found: 3"
    assert Catalogues.load().words("xx").lang == "ru"  # an unknown language: the default
    with pytest.raises(KeyError):
        words("no.such.key")


@pytest.mark.parametrize(
    ("cookie", "accept", "chosen"),
    [
        ("kk", "en-US,en;q=0.9", "kk"),  # the remembered choice wins
        (None, "de-DE,en-US;q=0.8", "en"),  # the browser's first we have
        ("fr", "ru", "ru"),  # a cookie we do not speak is ignored
        (None, None, "ru"),
        (None, "", "ru"),
    ],
)
def test_choose_the_language(cookie: str | None, accept: str | None, chosen: str) -> None:
    assert choose(cookie, accept) == chosen
