"""`ugem serve` warns once when the node's name is not one the internet can use."""

from __future__ import annotations

import logging

import pytest

from ugem.commands.serve import check_hostname


@pytest.mark.parametrize("name", ["localhost", "localhost.localdomain", "gateway", "gw."])
def test_an_unqualified_name_is_warned_about_naming_the_key(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ugem.commands.serve")
    check_hostname(name)
    [record] = caplog.records
    assert record.getMessage() == "hostname_not_qualified"
    assert record.__dict__["fields"]["key"] == "node.hostname"
    assert record.__dict__["fields"]["hostname"] == name


@pytest.mark.parametrize("name", ["gw.sts.kz", "mail.egov.kz"])
def test_a_qualified_name_is_not(name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ugem.commands.serve")
    check_hostname(name)
    assert caplog.records == []
