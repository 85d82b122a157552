"""The relay's DNS readiness check as the applications service sees it (`DnsCheck`).

`application_check(readiness)` gives each of `relay.readiness.DnsReadiness`'s
findings as the service's `Finding`; the check's own errors pass through.
"""

from __future__ import annotations

from relay.readiness import DnsReadiness
from ugem.core.services.applications import DnsCheck, Finding


def application_check(readiness: DnsReadiness) -> DnsCheck:
    """The check as the applications' `DnsCheck` provider: its findings as theirs."""

    async def check(domain: str) -> list[Finding]:
        return [Finding(f.name, f.ok, f.record) for f in await readiness.check(domain)]

    return check
