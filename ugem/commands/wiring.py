"""The services a `ugem` command calls: the admin API's, wired for one command's run.

`with_services(config, action)` opens the configured store, builds the same
`ConnectionService` and `ApplicationService` the node builds for its admin
API (with a `Notifier` over the node's notice settings), runs `action` on
them and closes everything. The notices of the decisions go through a
`ugem.adapters.outbox.SpoolOutbox`: committed as ACTIVE messages into worker 0's
spool file, which a running node scans about once a second and a stopped
one picks up on its next start. The spool is opened only when a notice is
sent, and they are DKIM-signed as the node signs its own mail
(`relay.queue.own_mail.GatewaySigner`). An application's DNS readiness check
(`relay.readiness`) asks the resolver of `[delivery]`, built on the first
lookup. Whatever `action` raises passes through (the CLI
prints it as one line); a notice that cannot be queued is logged and audited
by the `Notifier`, and the decision stands.

`index_journal(config)` is the journal a command's `QueueService` tells its
changes to (messages held, released, deleted: `ugem queue`): they are filed
in the node's message index (`ugem.core.message_index`) when the block ends,
so `ugem log search` shows who did it and why, as for the admin API's; one
the index cannot take is a warning on stderr, and the change stands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from relay.queue.own_mail import gateway_signer
from relay.queue.spool import spool_path
from relay.readiness import readiness_from_config
from ugem.adapters.outbox import SpoolOutbox
from ugem.adapters.readiness import application_check
from ugem.core.clock import Clock, SystemClock
from ugem.core.config import Config
from ugem.core.errors import UsageError
from ugem.core.events import Event, Publish
from ugem.core.maillog import entry_of
from ugem.core.maillog_writer import index_settings
from ugem.core.registry import Registry
from ugem.core.services.applications import ApplicationService
from ugem.core.services.audit import AuditLog
from ugem.core.services.connections import ConnectionService
from ugem.core.services.notices import Notifier, notice_settings
from ugem.core.store import Store, open_store

T = TypeVar("T")


@dataclass(frozen=True)
class CommandServices:
    connections: ConnectionService
    applications: ApplicationService
    outbox: SpoolOutbox


@dataclass(frozen=True)
class Done(Generic[T]):
    """What `action` returned, the notices it queued (queue id, recipients) and the
    ones that could not be queued (why)."""

    result: T
    notices: Sequence[tuple[str, tuple[str, ...]]]
    failed: Sequence[str]


class _NoticeFailures(logging.Handler):
    """Collects the `notice_failed` events of the `Notifier` while a command runs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.failed: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "event", None) == "notice_failed":
            fields = getattr(record, "fields", {})
            self.failed.append(
                f"{fields.get('kind')} notice to {fields.get('target')}: {fields.get('error')}"
            )


def build(store: Store, clock: Clock, config: Config, outbox: SpoolOutbox) -> CommandServices:
    """The connection and application services over `store`, mailing through `outbox`."""
    audit = AuditLog(store, clock)
    notifier = Notifier(outbox, audit, clock, notice_settings(config))
    connections = ConnectionService(store, Registry(store, clock), audit, clock, notifier)
    applications = ApplicationService(
        store,
        connections,
        audit,
        clock,
        dns_check=application_check(readiness_from_config(config)),
        notifier=notifier,
    )
    return CommandServices(connections, applications, outbox)


def with_services(config: Config, action: Callable[[CommandServices], Awaitable[T]]) -> Done[T]:
    """Open the store, run `action` on the services, close; the result and notices queued."""

    async def run() -> Done[T]:
        clock = SystemClock()
        store = open_store(config.store_url)
        signer = gateway_signer(config, clock)
        outbox = SpoolOutbox(spool_path(config), clock, config.spool.max_size_mb, signer)
        failures = _NoticeFailures()
        notices_log = logging.getLogger("ugem.core.services.notices")
        notices_log.addHandler(failures)
        try:
            result = await action(build(store, clock, config, outbox))
        finally:
            notices_log.removeHandler(failures)
            try:
                await outbox.close()
            finally:
                await store.close()
        return Done(result, list(outbox.sent), failures.failed)

    return asyncio.run(run())


@contextlib.contextmanager
def as_options(options: Mapping[str, str]) -> Iterator[None]:
    """Name the command's options in the services' UsageErrors, which name their fields:
    with {"reasons": "--reason"}, "reasons: empty" becomes "--reason: empty"."""
    try:
        yield
    except UsageError as exc:
        name, colon, rest = str(exc).partition(":")
        if colon and name in options:
            raise UsageError(options[name] + colon + rest) from exc
        raise


def print_notices(done: Done[Any]) -> None:
    """One line per notice queued (its queue id and recipients) on stdout, and one per
    notice not queued on stderr (the decision stands; the audit log has it too)."""
    for queue_id, rcpts in done.notices:
        print(f"notice {queue_id} queued to {', '.join(rcpts)}")
    for failure in done.failed:
        print(f"ugem: warning: not queued: {failure}", file=sys.stderr)


@contextlib.contextmanager
def index_journal(config: Config) -> Iterator[Publish | None]:
    """A journal of the queue's changes, filed in the message index when the block ends
    (None: `[log] index_days` is 0)."""
    settings = index_settings(config)
    if settings is None:
        yield None
        return
    told: list[Event] = []
    yield told.append
    entries = [entry for ev in told if (entry := entry_of(ev)) is not None]
    if not entries:
        return
    try:
        index = settings.open_index()
        try:
            index.write(entries)
        finally:
            index.close()
    except (sqlite3.Error, OSError) as exc:
        print(f"ugem: warning: not in the message index: {exc}", file=sys.stderr)
