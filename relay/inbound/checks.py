"""Inbound authentication of mail from the internet: SPF, DKIM, DMARC, the header, the policy.

`InboundAuth` is the `relay.accept.commands.Inbound` of a node: the session
calls `check(text, envelope)` at the end of DATA for every message a
connected server did not send, before its own Received: header. It

1. runs, at the same time and under one deadline (`[auth] timeout`), SPF
   for the session's identity (`relay.inbound.spf`: MAIL FROM, or HELO for the null
   sender), DKIM verification of at most `max_dkim_signatures` signatures
   (`relay.inbound.dkim_verify`) and DMARC policy discovery for the From: domain
   (`relay.inbound.dmarc`); then the DMARC verdict from the three;
2. applies the policy knobs (`decide`): a DMARC failure whose disposition is
   reject (p=reject after pct=), and a message with several From: fields or
   addresses, get 550 5.7.1 when `dmarc_reject = "reject"`; an SPF fail gets
   550 5.7.23 when `spf_fail = "reject"` and DMARC did not pass (so an
   aligned DKIM signature still saves forwarded mail, RFC 7489 10.1); other
   DMARC failures under p=reject or p=quarantine are delivered with
   `X-UGEM-Quarantine: dmarc` unless `dmarc_reject = "tag"`;
3. returns the message with every Authentication-Results: claiming our
   authserv-id removed and ours (and the quarantine mark) on top, or the
   Reply that refuses it.

The three share one `relay.dns.AuthDns`: the resolver of `[delivery]
dns_servers` (`relay.dns.make_resolver`; a bad entry is a ConfigError when
it is built). SPF and DKIM run in `AUTH_THREADS` worker threads of its own
(pyspf and dkimpy are synchronous and wait there, through a
`relay.dns.BlockingDns`, for their DNS answers, which must not hold up the
loop's default executor, where outbound mail is DKIM-signed). A lookup that
gets no answer (`relay.dns.DnsTrouble`) is temperror and never leads to a
refusal (a DMARC verdict that hinges on one is temperror too). An unexpected
exception in a check (a bug here or in pyspf/dkimpy) is 451 4.3.0 with an
ERROR line naming the queue id: the mail is neither let through unchecked
nor refused for good. Metrics: `ugem_auth_results_total{method,result}`.
Logs: `auth_checked` at DEBUG per message, `auth_refused` at INFO.
`inbound_from_config` builds it from `[auth]` (None when disabled).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from relay import replies
from relay.accept.commands import Envelope, Inbound
from relay.dns import AuthDns
from relay.header_block import Header
from relay.inbound.authres import ResInfo, result_field, safe_value, strip_ours
from relay.inbound.dkim_verify import DkimResult, DkimVerifier
from relay.inbound.dmarc import Author, Discovery, DmarcLookup, DmarcResult, author_of, verdict
from relay.inbound.spf import SpfChecker, SpfResult
from relay.replies import Reply
from ugem.core.clock import Clock
from ugem.core.config import AuthConfig, Config
from ugem.core.errors import ConfigError
from ugem.core.log import event
from ugem.core.metrics import Metrics

log = logging.getLogger(__name__)

QUARANTINE_FIELD = b"X-UGEM-Quarantine: dmarc\r\n"
AUTH_THREADS = 32  # SPF and DKIM checks running at once; more wait their turn (and deadline)
DELIVER, QUARANTINE = "deliver", "quarantine"
_EXPLAINED = ("neutral", "none", "temperror", "permerror")  # results whose reason goes in A-R


@dataclass(frozen=True)
class Verdict:
    """Every result of one message."""

    spf: SpfResult
    dkim: list[DkimResult]
    dmarc: DmarcResult


def decide(config: AuthConfig, found: Verdict) -> Reply | str:
    """The refusal, or DELIVER / QUARANTINE, that the knobs make of the results."""
    dmarc = found.dmarc
    severe = dmarc.several_authors or (dmarc.result == "fail" and dmarc.disposition == "reject")
    if severe and config.dmarc_reject == "reject":
        return replies.SEVERAL_AUTHORS if dmarc.several_authors else replies.DMARC_REJECT
    if config.spf_fail == "reject" and found.spf.result == "fail" and dmarc.result != "pass":
        return replies.SPF_REJECT
    marked = severe or (dmarc.result == "fail" and dmarc.disposition == "quarantine")
    return QUARANTINE if marked and config.dmarc_reject != "tag" else DELIVER


def resinfos(found: Verdict) -> list[ResInfo]:
    """The Authentication-Results: entries: spf, one dkim per signature (or none), dmarc."""
    spf = found.spf
    prop = "smtp.mailfrom" if spf.identity == "mailfrom" else "smtp.helo"
    infos = [ResInfo("spf", spf.result, _props((prop, spf.value)), _why(spf.result, spf.reason))]
    infos += [_dkim_info(r) for r in found.dkim] or [ResInfo("dkim", "none")]
    dmarc = found.dmarc
    comment = f"p={dmarc.policy} dis={dmarc.disposition}" if dmarc.policy else ""
    props = _props(("header.from", dmarc.author))
    infos.append(ResInfo("dmarc", dmarc.result, props, _why(dmarc.result, dmarc.reason), comment))
    return infos


def _dkim_info(result: DkimResult) -> ResInfo:
    ids = _props(("header.d", result.domain), ("header.s", result.selector))
    return ResInfo("dkim", result.result, ids, result.reason if result.result != "pass" else "")


def _props(*pairs: tuple[str, str]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in pairs if value]


def _why(result: str, reason: str) -> str:
    return reason if result in _EXPLAINED else ""


class InboundAuth:
    def __init__(
        self,
        config: AuthConfig,
        authserv_id: str,
        dns: AuthDns,
        clock: Clock,
        metrics: Metrics,
        sample: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.authserv_id = authserv_id
        self.clock = clock
        self.metrics = metrics
        self.sample = sample  # uniform in [0, 1): which failures pct= applies to
        # Threads of their own: a check waits in one for its DNS answers, and must not
        # hold up the threads of the loop's default executor (DKIM signing of outbound mail).
        self.threads = ThreadPoolExecutor(AUTH_THREADS, thread_name_prefix="ugem-auth")
        self.spf = SpfChecker(dns, self.threads)
        self.dkim = DkimVerifier(dns, config.max_dkim_signatures, self.threads)
        self.dmarc = DmarcLookup(dns)

    async def check(self, text: bytes, envelope: Envelope) -> bytes | Reply:
        """The bytes to queue (our header on top) or the refusal; never raises."""
        started = self.clock.monotonic()
        try:
            checked = await self.evaluate(text, envelope)
        except Exception:
            event(
                log, "auth_check_failed", logging.ERROR, exc_info=True, queue_id=envelope.queue_id
            )
            return replies.INTERNAL_ERROR
        header, found = checked
        self._count(found)
        outcome = decide(self.config, found)
        self._log(envelope, found, outcome, self.clock.monotonic() - started)
        if isinstance(outcome, Reply):
            return outcome
        mark = QUARANTINE_FIELD if outcome == QUARANTINE else b""
        ours = result_field(self.authserv_id, resinfos(found))
        loop = asyncio.get_running_loop()
        kept = await loop.run_in_executor(self.threads, strip_ours, header, self.authserv_id)
        return ours + mark + kept

    async def evaluate(self, text: bytes, envelope: Envelope) -> tuple[Header, Verdict]:
        """The parsed header; SPF, DKIM and the DMARC record at once, then the DMARC verdict.

        The header is cut once, in a worker thread (linear, but a message may be 25 MB),
        and every check reads that one parse.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout
        header = await loop.run_in_executor(self.threads, Header.parse, text)
        author = author_of(header)
        spf, dkims, found = await asyncio.gather(
            self.spf.check(envelope.client_ip, envelope.sender, envelope.helo, deadline),
            self.dkim.verify(header, deadline),
            self._discover(author, deadline),
        )
        return header, Verdict(spf, dkims, verdict(author, found, spf, dkims, self.sample()))

    async def _discover(self, author: Author, deadline: float) -> Discovery:
        if author.domain is None:
            return Discovery(None)
        return await self.dmarc.discover(author.domain, deadline)

    def _count(self, found: Verdict) -> None:
        results = [("spf", found.spf.result), ("dmarc", found.dmarc.result)]
        results += [("dkim", r.result) for r in found.dkim] or [("dkim", "none")]
        for method, result in results:
            self.metrics.auth_results.labels(method, result).inc()

    def _log(self, envelope: Envelope, found: Verdict, outcome: Reply | str, took: float) -> None:
        fields: dict[str, Any] = {
            "queue_id": envelope.queue_id,
            "client_ip": envelope.client_ip,
            "spf": found.spf.result,
            "dkim": ",".join(f"{r.result}:{r.domain}" for r in found.dkim) or "none",
            "dmarc": found.dmarc.result,
            "author": found.dmarc.author,
        }
        if isinstance(outcome, Reply):
            event(log, "auth_refused", logging.INFO, reply=str(outcome), **fields)
        else:
            event(log, "auth_checked", logging.DEBUG, outcome=outcome, seconds=took, **fields)


def inbound_from_config(config: Config, clock: Clock, metrics: Metrics) -> Inbound | None:
    """The node's inbound checks (an `InboundAuth`), or None when `[auth] enabled` is false."""
    auth = config.auth
    if not auth.enabled:
        return None
    authserv_id = auth.authserv_id or config.hostname
    if safe_value(authserv_id) != authserv_id:
        raise ConfigError(
            "auth.authserv_id", authserv_id, "a host name (letters, digits, dots, hyphens)"
        )
    return InboundAuth(auth, authserv_id, AuthDns(config.delivery), clock, metrics)
