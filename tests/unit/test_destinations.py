"""ugem.core.destinations: a recipient domain's class, from a bounded set."""

from __future__ import annotations

import pytest

from ugem.core.destinations import CLASSES, GOV_KZ, KZ, OTHER, PROVIDERS, destination_class


@pytest.mark.parametrize(
    ("domain", "cls"),
    [
        ("gmail.com", "gmail"),
        ("GoogleMail.COM.", "gmail"),
        ("bk.ru", "mail.ru"),
        ("yandex.kz", "yandex"),  # a provider before its zone
        ("hotmail.com", "microsoft"),
        ("gov.kz", GOV_KZ),
        ("minfin.gov.kz", GOV_KZ),
        ("akimat.almaty.gov.kz", GOV_KZ),
        ("kaspi.kz", KZ),
        ("mail.kz", KZ),
        ("mygov.kz", KZ),  # not under gov.kz
        ("үкімет.қаз", KZ),
        ("xn--80ao21a", OTHER),  # the zone itself is no domain of mail
        ("example.org", OTHER),
        ("gmail.com.evil.example", OTHER),
        ("", OTHER),
    ],
)
def test_a_domain_has_one_class(domain: str, cls: str) -> None:
    assert destination_class(domain) == cls


def test_the_classes_are_few_and_cover_every_provider() -> None:
    assert set(PROVIDERS.values()) | {GOV_KZ, KZ, OTHER} == CLASSES
    assert len(CLASSES) <= 12
