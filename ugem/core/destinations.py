"""Destination classes: a recipient domain named by one of a few labels, for metrics.

`destination_class(domain)` answers one of `CLASSES`: a big mailbox provider by
name (gmail, mail.ru, yandex, microsoft, yahoo, apple: the domains of `PROVIDERS`),
"gov.kz" (the state's own domains and their subdomains), "kz" (any other domain
under .kz or .қаз), or "other". It never answers the domain itself, so a series
labelled by it has at most len(CLASSES) values whatever the mail's destinations.
Pure; it never raises (an empty or odd domain is "other").
"""

from __future__ import annotations

from typing import Final

PROVIDERS: Final[dict[str, str]] = {
    **dict.fromkeys(("gmail.com", "googlemail.com"), "gmail"),
    **dict.fromkeys(("mail.ru", "inbox.ru", "list.ru", "bk.ru", "internet.ru"), "mail.ru"),
    **dict.fromkeys(("yandex.ru", "yandex.kz", "yandex.com", "ya.ru", "yandex.by"), "yandex"),
    **dict.fromkeys(("outlook.com", "hotmail.com", "live.com", "msn.com"), "microsoft"),
    **dict.fromkeys(("yahoo.com", "ymail.com"), "yahoo"),
    **dict.fromkeys(("icloud.com", "me.com", "mac.com"), "apple"),
}
GOV_KZ: Final = "gov.kz"
KZ: Final = "kz"
OTHER: Final = "other"
CLASSES: Final = frozenset({*PROVIDERS.values(), GOV_KZ, KZ, OTHER})
_KZ_ZONES = ("kz", "қаз", "xn--80ao21a")  # .қаз is Kazakhstan's Cyrillic top-level domain


def destination_class(domain: str) -> str:
    """The class of recipient domain `domain` (any case, a trailing dot or not)."""
    name = domain.strip().lower().rstrip(".")
    provider = PROVIDERS.get(name)
    if provider is not None:
        return provider
    if name == GOV_KZ or name.endswith("." + GOV_KZ):
        return GOV_KZ
    if any(name.endswith("." + zone) for zone in _KZ_ZONES):
        return KZ
    return OTHER
