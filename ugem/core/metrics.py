"""Prometheus metrics of a node, defined once here and used by every part.

Each metric lives in the node's own `CollectorRegistry` (not the global one),
so several nodes can run in one test process. Parts receive the `Metrics`
object; nothing registers metrics elsewhere. Updating a metric never raises.
Messages (what a client handed over: `ugem_messages_total`) and recipients
(what became of each address: `ugem_recipients_total`) are counted apart;
destinations are labelled by class (`ugem.core.destinations`), never by raw
domain, so every label's values are bounded. No counter or histogram exports
a `_created` series (disabled for the process when this module is imported).
The dashboards and alert rules under `ugem/deploy/` query these names (a test
holds them to what a running node exposes).
"""

from __future__ import annotations

import itertools
import platform
from collections.abc import Callable
from importlib import metadata
from typing import Literal, get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)

from ugem.core.destinations import CLASSES, destination_class

# One series per counter, not two (its start time is not wanted); process-wide, and read at
# each scrape, so it holds for every registry. The library leaves it without annotations.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DELIVERY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    3600,
    86400,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
NO_CONNECTION = "none"  # the connection label of mail of no connection (inbound, DSNs)
MessageOutcome = Literal["accepted", "rejected"]
RecipientOutcome = Literal["delivered", "deferred", "bounced", "expired"]


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.smtp_connections = Gauge(
            "ugem_smtp_connections", "Open inbound SMTP sessions", registry=r
        )
        self.smtp_connections_total = Counter(
            "ugem_smtp_sessions_total", "Inbound SMTP sessions opened", registry=r
        )
        self.smtp_replies = Counter(
            "ugem_smtp_replies_total",
            "SMTP replies sent by command and code",
            ["command", "code"],
            registry=r,
        )
        self.messages = Counter(
            "ugem_messages_total",
            "Messages clients sent over SMTP (one per DATA, whatever its recipients) by "
            "outcome: accepted (queued, 250), rejected (refused at the end of DATA, 4xx or 5xx)",
            ["outcome"],
            registry=r,
        )
        self.recipients = Counter(
            "ugem_recipients_total",
            "Recipients of queued mail by outcome: delivered, deferred (once per attempt that "
            "deferred it), bounced (refused for good by the next hop), expired (the queue "
            "lifetime ran out: bounced with 4.4.7); by destination class: gmail, mail.ru, "
            "yandex, microsoft, yahoo, apple, gov.kz, kz, other (ugem.core.destinations)",
            ["outcome", "destination"],
            registry=r,
        )
        self.queue_size = Gauge(
            "ugem_queue_messages", "Messages in the queue by state", ["state"], registry=r
        )
        self.queue_oldest_age = Gauge(
            "ugem_queue_oldest_age_seconds",
            "Seconds since the oldest message in each queue state arrived (0: none), found "
            "at each scan of the queue ([delivery] scan_interval), its age read at the scrape",
            ["state"],
            registry=r,
        )
        self.build = Info(
            "ugem_build", "The running gateway: its version and Python's (always 1)", registry=r
        )
        self.build.info({"version": _version(), "python": platform.python_version()})
        self.ready = Gauge(
            "ugem_ready",
            "1 while this process's /readyz answers 200 (ready or degraded), 0 while it "
            "answers 503 (starting, stopping, spool unhealthy, drained, registry too old)",
            registry=r,
        )
        self.accept_latency = Histogram(
            "ugem_accept_latency_seconds",
            "End of DATA to the reply",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.delivery_latency = Histogram(
            "ugem_delivery_latency_seconds",
            "Acceptance to delivery of a recipient",
            buckets=DELIVERY_BUCKETS,
            registry=r,
        )
        self.fsync_batch = Histogram(
            "ugem_spool_fsync_batch_messages",
            "Messages made durable by one fsync (group commit)",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.spool_errors = Counter(
            "ugem_spool_errors_total", "Spool failures by kind", ["kind"], registry=r
        )
        self.unrecorded = Gauge(
            "ugem_deliveries_unrecorded",
            "Attempts whose outcome the spool could not write yet (delivery paused while > 0)",
            registry=r,
        )
        self.events_dropped = Counter(
            "ugem_events_dropped_total",
            "Events dropped for a slow observer",
            ["observer"],
            registry=r,
        )
        self.applications_overdue = Gauge(
            "ugem_applications_overdue",
            "Pending applications past their decision date (five working days)",
            registry=r,
        )
        self.outbound_sessions = Gauge(
            "ugem_outbound_sessions", "Open outbound SMTP sessions", registry=r
        )
        self.detector_suspensions = Counter(
            "ugem_detector_suspensions_total",
            "Connections the anomaly detector suspended (mode=enforce) "
            "or would have suspended (mode=shadow)",
            ["mode"],
            registry=r,
        )
        self.detector_throttles = Counter(
            "ugem_detector_throttles_total",
            "Connections the anomaly detector throttled (mode=enforce) "
            "or would have throttled (mode=shadow: shadow mode or an exemption)",
            ["mode"],
            registry=r,
        )
        self.throttled_connections = Gauge(
            "ugem_throttled_connections",
            "Connections throttled now: mail over their usual rate gets 451 4.7.1 "
            "(this process's board; with a shared feed every worker's agrees)",
            registry=r,
        )
        self.detector_events = Counter(
            "ugem_detector_events_total",
            "Traffic events of connected servers the anomaly detector judged "
            "(with a shared feed: every worker's and node's)",
            registry=r,
        )
        self.incidents_opened = Counter(
            "ugem_incidents_opened_total",
            "Incidents the anomaly detector opened, by mode: enforce (it throttled or "
            "suspended the connection), shadow (it only watched: shadow mode or an exemption)",
            ["mode"],
            registry=r,
        )
        self.gateway_incidents = Counter(
            "ugem_gateway_incidents_opened_total",
            "Incidents of the gateway itself opened, by cause: listed (an address on a DNS "
            "blocklist), blocklisted-replies (a burst of replies refusing its mail as "
            "blocklisted) (ugem.core.services.gateway)",
            ["cause"],
            registry=r,
        )
        self.tls_handshake_failures = Counter(
            "ugem_smtp_tls_handshake_failures_total",
            "Inbound STARTTLS handshakes that failed, by reason: timeout, tls_error "
            "(e.g. a protocol version below TLS 1.2), disconnected",
            ["reason"],
            registry=r,
        )
        self.tls_reloads = Counter(
            "ugem_tls_reloads_total",
            "Reloads of the STARTTLS certificate and key (SIGHUP) by result: ok, failed",
            ["result"],
            registry=r,
        )
        self.auth_results = Counter(
            "ugem_auth_results_total",
            "Inbound authentication results of mail from the internet, by method (spf, dkim, "
            "dmarc) and result (pass, fail, softfail, neutral, none, temperror, permerror)",
            ["method", "result"],
            registry=r,
        )
        self.mta_sts_fetches = Counter(
            "ugem_mta_sts_fetches_total",
            "MTA-STS policy fetches (RFC 8461) by result: ok, failed (no address, connection, "
            "TLS, timeout, HTTP status other than 200), invalid (content type, size, syntax)",
            ["result"],
            registry=r,
        )
        self.mta_sts_failures = Counter(
            "ugem_mta_sts_failures_total",
            "Deliveries that did not meet the recipient domain's MTA-STS policy, by mode: "
            "enforce (blocked: nothing sent, deferred), testing (delivered anyway, reported)",
            ["mode"],
            registry=r,
        )
        self.reputation_listed = Gauge(
            "ugem_reputation_listed",
            "1 while the gateway's address is listed on the DNS blocklist zone, 0 once found "
            "clear; an unusable or unanswered lookup leaves the last verdict (the watch of "
            "[reputation], ugem.core.services.reputation)",
            ["address", "zone"],
            registry=r,
        )
        self.reputation_last_check = Gauge(
            "ugem_reputation_last_check_timestamp_seconds",
            "When the gateway's addresses were last checked on the DNS blocklists (Unix time)",
            registry=r,
        )
        self.delivery_replies = Counter(
            "ugem_delivery_replies_total",
            "Recipients' delivery replies by the origin connection (none: inbound mail, DSNs) "
            "and what the reply says (ugem.core.reply_class: delivered, rate-limited, ...)",
            ["connection", "class"],
            registry=r,
        )
        self.destination_replies = Counter(
            "ugem_destination_replies_total",
            "Recipients' delivery replies by destination class (as ugem_recipients_total) and "
            "what the reply says (ugem.core.reply_class: delivered, rate-limited, ...)",
            ["destination", "class"],
            registry=r,
        )
        self.backoff_destinations = Gauge(
            "ugem_delivery_backoff_destinations",
            "Destinations whose concurrency or spacing a rate-limit reply reduced, now "
            "(this process's; relay.deliver.backoff)",
            registry=r,
        )
        self.store_up = Gauge(
            "ugem_store_up",
            "1 while the registry's store answers and is trusted, 0 while it is unreachable "
            "or refused (empty, another generation, older) and the registry copy serves "
            "(ugem.core.registry_watch)",
            registry=r,
        )
        self.registry_copy_age = Gauge(
            "ugem_registry_copy_age_seconds",
            "Seconds since the store last confirmed the registry this process relays on "
            "(about 1 while the store is up; [store] max_stale bounds it while it is down)",
            registry=r,
        )
        self.complaints = Counter(
            "ugem_complaints_total",
            "Feedback-loop complaints received at [reputation] fbl_address, by the connection "
            "they were traced to (none: not traced) and feedback type (abuse, fraud, virus, "
            "other, not-spam, auth-failure; delivery-status, a DSN; unknown, not parsed)",
            ["connection", "feedback_type"],
            registry=r,
        )
        self.draining = Gauge(
            "ugem_draining",
            "1 while this worker is drained into another node: it takes no mail and starts no "
            "delivery (ugem.draining)",
            registry=r,
        )
        self.drained = Counter(
            "ugem_drained_messages_total",
            "Queued messages a drain handed over by result: moved (the other node made it "
            "durable), already (it had it: a retry after a cut), failed (it stays here)",
            ["result"],
            registry=r,
        )
        self.imported = Counter(
            "ugem_imported_messages_total",
            "Messages another node's drain handed over to this one by result: created, "
            "already (a retried transfer, not queued twice), refused",
            ["result"],
            registry=r,
        )

        self._start_at_zero()
        self._replies: dict[tuple[str, int], Counter] = {}
        self._outcomes: dict[str, Counter] = {}
        self._recipients: dict[tuple[str, str], Counter] = {}
        self._by_connection: dict[tuple[str, str], Counter] = {}
        self._by_destination: dict[tuple[str, str], Counter] = {}

    def _start_at_zero(self) -> None:
        """The series of the label values known in advance, at 0 from the start: the alert
        rules take `increase()` of them, which misses a series that first appears at 1."""
        for outcome in get_args(MessageOutcome):
            self.messages.labels(outcome)
        for outcome, cls in itertools.product(get_args(RecipientOutcome), sorted(CLASSES)):
            self.recipients.labels(outcome, cls)
        for mode in ("enforce", "shadow"):
            self.detector_suspensions.labels(mode)
            self.detector_throttles.labels(mode)
            self.incidents_opened.labels(mode)
        for cause in ("listed", "blocklisted-replies"):
            self.gateway_incidents.labels(cause)
        for kind in ("write", "full", "rejected"):
            self.spool_errors.labels(kind)

    def count(self, outcome: MessageOutcome) -> None:
        """One more message a client sent, `outcome` accepted or rejected."""
        child = self._outcomes.get(outcome)
        if child is None:
            child = self._outcomes[outcome] = self.messages.labels(outcome)
        child.inc()

    def recipient(self, outcome: RecipientOutcome, domain: str) -> None:
        """One more recipient at recipient `domain` delivered, deferred, bounced or expired."""
        key = (outcome, destination_class(domain))
        child = self._recipients.get(key)
        if child is None:
            child = self._recipients[key] = self.recipients.labels(*key)
        child.inc()

    def reply(self, command: str, code: int) -> None:
        """One more SMTP reply to `command` with `code` (labelled children kept: hot path)."""
        child = self._replies.get((command, code))
        if child is None:
            child = self._replies[command, code] = self.smtp_replies.labels(command, str(code))
        child.inc()

    def delivery_reply(self, connection: str, destination: str, cls: str) -> None:
        """One more delivery reply of class `cls` to mail of `connection` for domain
        `destination` (counted by the domain's class)."""
        key = (connection or NO_CONNECTION, cls)
        child = self._by_connection.get(key)
        if child is None:
            child = self._by_connection[key] = self.delivery_replies.labels(*key)
        child.inc()
        key = (destination_class(destination), cls)
        child = self._by_destination.get(key)
        if child is None:
            child = self._by_destination[key] = self.destination_replies.labels(*key)
        child.inc()

    def queue_state(
        self, state: str, messages: int, oldest: float | None, now: Callable[[], float]
    ) -> None:
        """`messages` in queue `state`, the oldest of them received at `oldest` (None: none);
        its age is read from `now` at each scrape, so it grows even if scans stop."""
        self.queue_size.labels(state=state).set(messages)
        self.queue_oldest_age.labels(state=state).set_function(_age(oldest, now))

    def complaint(self, connection: str, feedback_type: str) -> None:
        """One more complaint about `connection` ("": not traced) of `feedback_type`."""
        self.complaints.labels(connection or NO_CONNECTION, feedback_type).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _age(since: float | None, now: Callable[[], float]) -> Callable[[], float]:
    """Seconds from `since` to `now()`, never negative; 0 when `since` is None."""
    if since is None:
        return lambda: 0.0
    return lambda: max(0.0, now() - since)


def _version() -> str:
    """The installed gateway's version ("unknown" when it runs from an uninstalled tree)."""
    try:
        return metadata.version("ugem")
    except metadata.PackageNotFoundError:
        return "unknown"
