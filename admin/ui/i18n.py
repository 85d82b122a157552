"""The console's words in Kazakh, Russian and English: one catalogue per language.

The catalogues are package data (`admin/ui/messages/<lang>.json`, a flat object
of key -> text, `{name}` marking a value put in). `Catalogues.load()` reads all
three and promises they have exactly the same keys and the same placeholders
per key, raising `ConfigError` naming the first difference otherwise (at the
node's start, not in front of an operator). `words(lang)` gives the `Words` of
a language: `words("state.connected")`, `words("connections.found", n=3)`; an unknown
key is a `KeyError` (a bug: the completeness test holds every key the templates
use). `choose(cookie, accept_language)` picks the language: the remembered
choice, else the browser's first supported one, else Russian.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

from ugem.core.errors import UgemError

LANGUAGES: Final = ("kk", "ru", "en")
DEFAULT: Final = "ru"
NAMES: Final = {"kk": "Қазақша", "ru": "Русский", "en": "English"}  # each in its own language


def placeholders(text: str) -> frozenset[str]:
    """The `{name}`s of a catalogue text."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(text) if name)


@dataclass(frozen=True)
class Words:
    lang: str
    texts: dict[str, str]

    def __call__(self, key: str, **values: Any) -> str:
        text = self.texts[key]
        return text.format(**values) if values else text


@dataclass(frozen=True)
class Catalogues:
    texts: dict[str, dict[str, str]]  # lang -> key -> text

    @classmethod
    def load(cls) -> Catalogues:
        folder = resources.files("admin.ui") / "messages"
        texts = {
            lang: json.loads((folder / f"{lang}.json").read_text(encoding="utf-8"))
            for lang in LANGUAGES
        }
        problem = difference(texts)
        if problem:
            raise UgemError(f"web console catalogues: {problem}")
        return cls(texts)

    def words(self, lang: str) -> Words:
        known = lang if lang in LANGUAGES else DEFAULT
        return Words(known, self.texts[known])


def difference(texts: dict[str, dict[str, str]]) -> str | None:
    """The first way the catalogues differ (a key missing, other placeholders), or None."""
    every = set().union(*(set(t) for t in texts.values()))
    for lang, catalogue in texts.items():
        missing = sorted(every - set(catalogue))
        if missing:
            return f"{lang} lacks {', '.join(missing)}"
    for key in sorted(every):
        wanted = placeholders(texts[DEFAULT][key])
        for lang, catalogue in texts.items():
            if placeholders(catalogue[key]) != wanted:
                return f"{lang}: {key!r} has other placeholders than {DEFAULT}"
    return None


def choose(cookie: str | None, accept_language: str | None) -> str:
    """The remembered language, else the browser's first one we have, else Russian."""
    if cookie is not None and cookie in LANGUAGES:
        return cookie
    for part in (accept_language or "").split(",")[:20]:
        lang = part.split(";")[0].strip().lower()[:2]
        if lang in LANGUAGES:
            return lang
    return DEFAULT
