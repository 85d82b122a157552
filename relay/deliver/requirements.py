"""The TLS a destination's recipients require, and whether a hop or a session gives it.

`Requirements.policy(route)` looks up the MTA-STS policy that applies to a
route; `Requirements.groups(rcpts, policy)` splits the route's recipients into
transactions, each with the `Need` its session must meet. The rules:

- recipients of `[delivery] tls_required_domains` go in a transaction of their
  own, only over a session whose STARTTLS verified the hop's certificate for
  its name (`Hop.tls_name`, against `tls_ca_file` or the system's CAs),
  whatever `starttls` says (the pool, `relay.deliver.pool`, opens such
  sessions). A hop that offers no STARTTLS or refuses it (4.7.4), or whose
  handshake or certificate fails (4.7.5), gets nothing, not even MAIL FROM,
  and no plain retry: the next hop is tried, and when none qualifies those
  recipients are deferred with a 451 naming the domain, the hop and the
  failure (`TlsRequired`; logged at INFO). A plain or unverified pooled
  session never carries them;
- MTA-STS (RFC 8461, `relay.deliver.mta_sts`, `[delivery] mta_sts`) applies to MX
  routes only (`Route.mx_domain`; an MX route carries one domain's
  recipients), its policy looked up before the attempt (through a
  `DnsCache` of the deliverer's own); a policy of mode none is no policy.
  Under a policy of mode enforce, the recipients go the way of
  tls_required_domains above, and a hop whose MX host matches none of the
  policy's mx patterns is not even connected to (451 4.7.5). Under mode
  testing (or any mode with `mta_sts = "testing-only"`) a hop is first tried
  that way, and when it falls short the mail goes as usual over a new session
  (opportunistic STARTTLS), which the transaction reports.
  tls_required_domains wins over a testing policy;
- `Need.accepts(session)` says whether a pooled session may carry a
  transaction: any session when nothing is required, a verified one from a
  hop the policy allows when verified TLS is, one opened under the testing
  policy when a shortfall is only to be reported.

How it fails: `Need.check_mx` raises `TlsRequired` (451 4.7.5, `ugem.core.errors`);
every TLS failure's text starts with `Need.where` and says what failed
(`tls_trouble`). `policy` never raises for a domain's trouble (`MtaSts.policy`);
what it raises unexpectedly, the deliverer turns into a deferral (4.3.0).
Nothing here does I/O but the policy lookup.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from relay.deliver.mta_sts import ENFORCE, NONE, MtaSts, StsPolicy
from relay.deliver.routing import Hop, Route
from relay.deliver.trouble import TLS_FAILED
from relay.tls import RequiredTls, domain_of
from ugem.core.config import DeliveryConfig
from ugem.core.errors import TlsRequired


class Carrier(Protocol):
    """What `Need.accepts` reads of a session (`relay.deliver.pool.Session`)."""

    @property
    def mx(self) -> str:
        """The name its certificate was checked against."""
        ...

    @property
    def verified(self) -> bool:
        """The certificate was checked for the hop's name."""
        ...

    @property
    def checked(self) -> bool:
        """It was opened under an MTA-STS policy in testing mode."""
        ...


@dataclass(frozen=True)
class Need:
    """What the session of a transaction must give: verified TLS for `domains` (none:
    any session will do), and under an MTA-STS `policy` a hop among its MX hosts.
    With `report` (testing mode) a session that falls short is used and reported."""

    domains: tuple[str, ...] = ()
    policy: StsPolicy | None = None
    report: bool = False

    @property
    def secure(self) -> bool:
        """Verified TLS or nothing."""
        return bool(self.domains) and not self.report

    def where(self, hop: Hop) -> str:
        """The start of a failure's text: what requires TLS, and the hop."""
        if self.policy is not None:
            why = f"TLS required by the MTA-STS policy of {self.policy.domain}"
        else:
            why = f"TLS required for {', '.join(self.domains)}"
        return f"{why}: next hop {hop.tls_name}"

    def accepts(self, session: Carrier) -> bool:
        """Whether an idle session may carry the transaction."""
        if not self.domains:
            return True
        if self.report:
            return session.checked
        return session.verified and (self.policy is None or self.policy.allows(session.mx))

    def check_mx(self, hop: Hop) -> None:
        """TlsRequired (4.7.5) when the hop's MX host matches none of the policy's patterns."""
        if self.policy is not None and not self.policy.allows(hop.tls_name):
            patterns = ", ".join(self.policy.mx)
            raise TlsRequired(
                TLS_FAILED, f"{self.where(hop)} is not an MX host the policy allows ({patterns})"
            )


ANY = Need()


def tls_trouble(exc: BaseException) -> str:
    """What went wrong in a verified STARTTLS: an untrusted certificate, or the handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not trusted: {exc.verify_message}"
    return f"TLS handshake failed: {type(exc).__name__}: {exc}"


class Requirements:
    """`[delivery] tls_required_domains` (`required`) and MTA-STS (`sts`, None when
    `[delivery] mta_sts` is "off"), applied to the recipients of one route."""

    def __init__(self, config: DeliveryConfig, required: RequiredTls, sts: MtaSts | None) -> None:
        self.config = config
        self._required = required
        self._sts = sts

    async def policy(self, route: Route) -> StsPolicy | None:
        """The MTA-STS policy of an MX route's domain, unless there is none to apply."""
        if self._sts is None or not route.mx_domain:
            return None
        policy = await self._sts.policy(route.mx_domain)
        return None if policy is None or policy.mode == NONE else policy

    def _enforces(self, policy: StsPolicy) -> bool:
        return policy.mode == ENFORCE and self.config.mta_sts == "enforce"

    def groups(
        self, rcpts: Sequence[str], policy: StsPolicy | None
    ) -> list[tuple[list[str], Need]]:
        """The recipients split by what their sessions must give, one transaction each."""
        strict = self._required.recipients(rcpts)
        if policy is not None and (self._enforces(policy) or not strict):
            report = not self._enforces(policy)
            return [(list(rcpts), Need((policy.domain,), policy, report))]
        if not strict:
            return [(list(rcpts), ANY)]
        chosen = set(strict)
        rest = [rcpt for rcpt in rcpts if rcpt not in chosen]
        domains = tuple(sorted({domain_of(rcpt) for rcpt in strict}))
        return [(strict, Need(domains)), (rest, ANY)]
