"""Connections for tests: a plain one by id, and one with every field set.

`plain(ident, *servers)` is a connected state body with one domain (its id)
and the given servers (a 192.0.2.x address derived from the id by default).
`full()` sets every field to a value unlike its default (Unicode names, an IDN
domain, IPv4/IPv6 hosts and networks, several contacts, extra data), so a
round trip through a store that loses or mangles any field is caught.
"""

from __future__ import annotations

import zlib

from ugem.core.model import Connection, ConnState, Contact, Language, OrgKind, ScheduledDisconnect


def plain(ident: str, *servers: str, domains: tuple[str, ...] = ()) -> Connection:
    default = f"192.0.2.{zlib.crc32(ident.encode()) % 250 + 1}"
    return Connection(
        id=ident,
        org_name=f"Organisation {ident}",
        kind=OrgKind.STATE_BODY,
        domains=domains or (ident,),
        servers=servers or (default,),
    )


def full() -> Connection:
    return Connection(
        id="minfin.gov.kz",
        org_name="Қазақстан Республикасының Қаржы министрлігі",
        kind=OrgKind.CRITICAL_INFRASTRUCTURE,
        domains=("minfin.gov.kz", "mail.minfin.gov.kz", "минфин.қаз"),
        servers=("10.20.30.40", "198.51.100.0/24", "2001:db8::25", "2001:db8:1::/48"),
        contacts=(
            Contact(
                "Әлия Сәрсенбаева", "aliya@minfin.gov.kz", "+7 7172 74-00-00", "+7 701 000 0000"
            ),
            Contact("John O'Brien", "noc@minfin.gov.kz"),
        ),
        language=Language.KK,
        state=ConnState.SUSPENDED,
        state_reason="аномалия: объём в 40 раз выше обычного",
        state_changed_at=1_767_300_000.5,
        created_at=1_767_225_600.25,
        extra={"bin": "123456789012", "note": "тест"},
        disconnect=ScheduledDisconnect(
            1_767_400_000.0, "статус изменён", "api:root", 1_767_300_001.0
        ),
    )
