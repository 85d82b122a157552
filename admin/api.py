"""The /v1/ API: the services it serves and the router that mounts one module per resource.

`OperatorServices` is what the node wiring (or a test) hands to `create_app`; every
route module gets its service and the `Authority` that checks roles (the token
was checked by `admin.auth.AuthGate`). The errors of the services are mapped
to HTTP in `admin.errors`, which also documents each operation's errors. The
drain's services (`drain`: `/v1/drain`; `transfer`: the import of another
node's mail, `/v1/queue/import`) are mounted when given.
"""

from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter

from admin import (
    applications,
    audit,
    connections,
    drain,
    incidents,
    messages,
    overrides,
    queue,
    queue_import,
    reputation,
    status,
    tokens,
    traffic,
)
from admin.auth import Authority
from ugem.core.clock import Clock
from ugem.core.events import Publish
from ugem.core.metrics import Metrics
from ugem.core.registry import Registry
from ugem.core.services.applications import ApplicationService, DnsCheck
from ugem.core.services.audit import AuditLog
from ugem.core.services.complaints import ComplaintService
from ugem.core.services.connections import ConnectionService
from ugem.core.services.drain import DrainService
from ugem.core.services.incidents import IncidentService
from ugem.core.services.mailqueue import MailQueue, QueueService
from ugem.core.services.messages import MessageService
from ugem.core.services.notices import NoticeSettings, Notifier, Outbox
from ugem.core.services.overrides import OverrideService
from ugem.core.services.reputation import ReputationService
from ugem.core.services.status import StatusService
from ugem.core.services.tokens import TokenService
from ugem.core.services.traffic import TrafficService, TrafficSource
from ugem.core.services.transfer import TransferService
from ugem.core.store.base import Store
from ugem.core.throttle import ThrottleView


@dataclass(frozen=True)
class OperatorServices:
    tokens: TokenService
    audit: AuditLog
    connections: ConnectionService
    queue: QueueService
    applications: ApplicationService
    incidents: IncidentService
    overrides: OverrideService
    reputation: ReputationService
    complaints: ComplaintService
    traffic: TrafficService  # traffic against its usual (/v1/connections/{id}/traffic)
    throttle: ThrottleView | None = None  # the node's throttled connections (ugem.core.throttle)
    drain: DrainService | None = None  # drains this node into another (/v1/drain)
    transfer: TransferService | None = None  # takes another node's mail (/v1/queue/import)
    messages: MessageService | None = None  # the message index (/v1/messages)
    status: StatusService | None = None  # one screen of the node (/v1/status)


V1 = "/v1"  # the prefix of the operator API


def build_services(
    store: Store,
    registry: Registry,
    queue: MailQueue,
    clock: Clock,
    metrics: Metrics | None = None,
    dns_check: DnsCheck | None = None,
    outbox: Outbox | None = None,
    notices: NoticeSettings | None = None,
    throttle: ThrottleView | None = None,
    reputation: ReputationService | None = None,
    complaints: ComplaintService | None = None,
    drain: DrainService | None = None,
    transfer: TransferService | None = None,
    messages: MessageService | None = None,
    journal: Publish | None = None,
    status_dir: Path | None = None,
    traffic_source: TrafficSource | None = None,
) -> OperatorServices:
    """The services of one node (or test) over its store, registry and queue.

    With `notices`, decisions are mailed to the organisations through `outbox`;
    `throttle` is the node's board of throttled connections, shown on each connection;
    `reputation` the node's watch of its addresses on the blocklists (None: one that
    checks nothing, so /v1/reputation answers with no standings); `complaints` the node's
    feedback-loop complaints (None: the ones in `store`, traced by `registry`, counted in
    `metrics`, announced on no bus); `messages` searches the message index; `journal` is
    told of the queue's changes (the mail log); `status_dir` is where the node's workers
    describe themselves (`ugem.core.runtime`: None, no /v1/status); `traffic_source` the
    live detector's counts and baselines (None: the detector is off, the traffic says so).
    """
    audit = AuditLog(store, clock)
    notifier = None if notices is None else Notifier(outbox, audit, clock, notices)
    connections = ConnectionService(store, registry, audit, clock, notifier)
    gauge = None if metrics is None else metrics.applications_overdue
    incidents = IncidentService(store, audit, clock)
    screen = (
        None if status_dir is None else StatusService(status_dir, store, queue, incidents, clock)
    )
    return OperatorServices(
        tokens=TokenService(store, audit, clock),
        audit=audit,
        connections=connections,
        queue=QueueService(queue, audit, clock, journal),
        applications=ApplicationService(
            store,
            connections,
            audit,
            clock,
            dns_check=dns_check,
            overdue_gauge=gauge,
            notifier=notifier,
        ),
        incidents=incidents,
        overrides=OverrideService(store, audit, clock),
        reputation=reputation or ReputationService(None, (), (), clock),
        complaints=complaints or ComplaintService(store, clock, registry, metrics=metrics),
        traffic=TrafficService(connections, clock, traffic_source),
        throttle=throttle,
        drain=drain,
        transfer=transfer,
        messages=messages,
        status=screen,
    )


def api_routers(services: OperatorServices) -> list[APIRouter]:
    """The /v1 routers (mounted under the prefix `V1` by the app). A list, not one router
    that includes them: FastAPI builds every route again for each include_router it
    passes through, and one level less builds the app a third faster."""
    auth = Authority()
    routers = [
        connections.router(services.connections, auth, services.throttle),
        traffic.router(services.traffic, auth),
        queue.router(services.queue, auth),
        audit.router(services.audit, auth),
        tokens.router(services.tokens, auth),
        applications.router(services.applications, auth),
        incidents.router(services.incidents, auth),
        overrides.router(services.overrides, auth),
        reputation.router(services.reputation, auth, services.complaints),
    ]
    if services.drain is not None:
        routers.append(drain.router(services.drain, auth))
    if services.transfer is not None:
        routers.append(queue_import.router(services.transfer, auth))
    if services.messages is not None:
        routers.append(messages.router(services.messages, auth))
    if services.status is not None:
        routers.append(status.router(services.status, auth))
    return routers
