"""The scheduler over the real spool, router, deliverer and registry, with a real sink.

Time is a FakeClock: a retry becomes due by `clock.advance(...)` and is started
by `scheduler.run_due()`, never by sleeping.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage, Message
from pathlib import Path

import pytest

from relay.deliver.routing import Router
from relay.deliver.transaction import Deliverer
from relay.queue.message import QueuedMessage, QueueState, new_queue_id
from relay.queue.schedule import Scheduler, retry_delay
from relay.queue.spool import Spool
from tests.support.connections import plain
from tests.support.sink import Sink, SinkMessage
from ugem.core.clock import FakeClock
from ugem.core.config import DeliveryConfig
from ugem.core.errors import SpoolError, SpoolFullError
from ugem.core.events import Event, EventBus, Outcome, QueueChange, Subscription, trace_record
from ugem.core.metrics import Metrics
from ugem.core.model import ConnState
from ugem.core.registry import Registry
from ugem.core.reply_class import MAX_TEXT, configured_patterns
from ugem.core.store.sqlite import SqliteStore

MIN, MAX, LIFETIME = 300.0, 4000.0, 3 * 3600.0
ORIGIN, ORIGIN_IP, SENDER = "gov.kz", "10.0.0.5", "alice@gov.kz"
BODY = b"The body of the original message.\r\n"


@dataclass
class World:
    """One node's delivery side, on the test's loop; `restart()` makes a new one."""

    tmp: Path
    sink: Sink
    clock: FakeClock
    store: SqliteStore
    registry: Registry
    config: DeliveryConfig
    bus: EventBus
    events: Subscription
    metrics: Metrics
    spool: Spool
    deliverer: Deliverer
    scheduler: Scheduler

    async def restart(self) -> None:
        """Stop the scheduler, close the spool; a new registry, spool and scheduler over
        the same files, set up in the node's order (registry synced before it has a
        listener)."""
        await self.scheduler.stop(grace=0)
        await self.deliverer.close()
        await self.spool.close()
        self.registry = Registry(self.store, self.clock)
        await self.registry.sync()
        self.spool, self.deliverer, self.scheduler = await _delivery_side(
            self.tmp, self.clock, self.registry, self.config, self.bus, self.metrics
        )

    async def close(self) -> None:
        await self.scheduler.stop(grace=0)
        await self.deliverer.close()
        await self.spool.close()
        await self.store.close()

    def message(self, *rcpts: str, sender: str = SENDER, connection: str = ORIGIN) -> QueuedMessage:
        data = (
            f"From: <{sender}>\r\nTo: {', '.join(rcpts)}\r\nSubject: report\r\n"
            f"Message-ID: <{new_queue_id()}@gov.kz>\r\n\r\n"
        ).encode() + BODY
        return QueuedMessage(
            id=new_queue_id(self.clock.now()),
            sender=sender,
            rcpts=list(rcpts),
            data=data,
            size=len(data),
            connection=connection,
            client_ip=ORIGIN_IP if connection else "203.0.113.9",
            received_at=self.clock.now(),
            original_rcpts=list(rcpts),
        )

    async def send(self, *rcpts: str, sender: str = SENDER) -> QueuedMessage:
        """Queue a message and let its first attempt (and any DSN it queues) finish."""
        msg = self.message(*rcpts, sender=sender)
        await self.scheduler.enqueue(msg)
        await self.scheduler.drain()
        return msg

    async def retry_at(self, when: float) -> int:
        """Move the clock to `when`, scan, finish the attempts; how many started."""
        self.clock.set(when)
        started = await self.scheduler.run_due()
        await self.scheduler.drain()
        return started

    def outcomes(self) -> list[tuple[str, str, int]]:
        """(event, rcpt, code) of every Outcome published so far."""
        out: list[tuple[str, str, int]] = []
        while not self.events.queue.empty():
            ev = self.events.queue.get_nowait()
            if isinstance(ev, Outcome):
                out.append((ev.event, ev.rcpt, ev.code))
        return out

    def dsns(self) -> list[SinkMessage]:
        return [m for m in self.sink.messages if m.sender == ""]

    def originals(self) -> list[SinkMessage]:
        return [m for m in self.sink.messages if m.sender != ""]


async def _delivery_side(
    tmp: Path,
    clock: FakeClock,
    registry: Registry,
    config: DeliveryConfig,
    bus: EventBus,
    metrics: Metrics,
) -> tuple[Spool, Deliverer, Scheduler]:
    spool = Spool(tmp / "spool" / "queue.db", clock, metrics)
    await spool.open()
    router = Router(registry, config, clock)
    deliverer = Deliverer(config, "gw.test", metrics, clock)
    scheduler = Scheduler(
        spool, router, deliverer, registry, bus, clock, config, metrics, "gw.test"
    )
    registry.on_change(scheduler.on_connection_change)
    return spool, deliverer, scheduler


@pytest.fixture
async def world(tmp_path: Path, sink: Sink) -> AsyncIterator[World]:
    clock = FakeClock()
    store = SqliteStore(tmp_path / "registry.db")
    await store.add(plain(ORIGIN, ORIGIN_IP))
    registry = Registry(store, clock)
    await registry.sync()
    hop = f"{sink.host}:{sink.port}"
    config = DeliveryConfig(
        routes={d: hop for d in ("example.org", "example.com", "example.net", ORIGIN)},
        dns_servers=["127.0.0.1"],  # never asked: every domain has a route
        min_backoff=MIN,
        max_backoff=MAX,
        queue_lifetime=LIFETIME,
        bounce_lifetime=LIFETIME / 3,
    )
    metrics, bus = Metrics(), EventBus()
    events = bus.subscribe("test")
    spool, deliverer, scheduler = await _delivery_side(
        tmp_path, clock, registry, config, bus, metrics
    )
    world = World(
        tmp_path,
        sink,
        clock,
        store,
        registry,
        config,
        bus,
        events,
        metrics,
        spool,
        deliverer,
        scheduler,
    )
    try:
        yield world
    finally:
        await world.close()


def parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def dsn_recipients(dsn: SinkMessage) -> dict[str, Message]:
    """Final-Recipient address -> its field group, from the DSN's delivery-status part."""
    report = list(parse(dsn.data).iter_parts())[1]
    assert report.get_content_type() == "message/delivery-status"
    groups = report.get_payload()
    assert isinstance(groups, list)
    return {
        str(g["Final-Recipient"]).split(";", 1)[1].strip(): g
        for g in groups
        if isinstance(g, Message) and g["Final-Recipient"]
    }


def counter(world: World, outcome: str, destination: str = "other") -> float:
    """ugem_recipients_total{outcome, destination} (example.org's class is "other")."""
    labels = {"outcome": outcome, "destination": destination}
    value = world.metrics.registry.get_sample_value("ugem_recipients_total", labels)
    return value or 0.0


# -- back-off ----------------------------------------------------------------------------


def test_backoff_doubles_from_min_to_max_with_a_little_fixed_jitter() -> None:
    delays = [retry_delay(n, MIN, MAX, "Q1") for n in range(1, 8)]
    assert MIN <= delays[0] <= MIN * 1.1
    assert 2 * MIN <= delays[1] <= 2 * MIN * 1.1
    assert 4 * MIN <= delays[2] <= 4 * MIN * 1.1
    assert delays[-1] == MAX and max(delays) == MAX
    assert retry_delay(3, MIN, MAX, "Q1") == delays[2]  # fixed per message and attempt
    assert retry_delay(10_000, MIN, MAX, "Q1") == MAX  # no overflow
    assert len({retry_delay(1, MIN, MAX, f"Q{i}") for i in range(20)}) > 1  # spread out


# -- delivery ----------------------------------------------------------------------------


async def test_delivered_once_and_removed_from_the_spool(world: World) -> None:
    msg = await world.send("bob@example.org")
    assert [(m.sender, m.rcpts) for m in world.sink.messages] == [(SENDER, ["bob@example.org"])]
    assert world.sink.messages[0].data.endswith(BODY)
    assert await world.spool.get(msg.id) is None and world.spool.size() == 0
    assert world.outcomes() == [("delivered", "bob@example.org", 250)]
    assert counter(world, "delivered") == 1
    assert await world.retry_at(world.clock.now() + LIFETIME) == 0
    assert len(world.sink.messages) == 1


async def test_outcome_events_carry_the_origin(world: World) -> None:
    await world.send("bob@example.org")
    ev = await world.events.get()
    assert isinstance(ev, Outcome)
    assert (ev.event, ev.queue_id != "", ev.connection, ev.ip, ev.rcpt, ev.code) == (
        "delivered",
        True,
        ORIGIN,
        ORIGIN_IP,
        "bob@example.org",
        250,
    )


async def test_451_twice_then_delivered_once_at_the_backoff_times(world: World) -> None:
    world.sink.data_replies = ["451 4.3.0 try later", "451 4.3.0 try later"]
    t0 = world.clock.now()
    msg = await world.send("bob@example.org")
    queued = await world.spool.get(msg.id)
    assert queued is not None
    assert (queued.state, queued.attempts, queued.last_error) == (
        QueueState.DEFERRED,
        1,
        "try later",
    )
    first = t0 + retry_delay(1, MIN, MAX, msg.id)
    assert queued.next_attempt == pytest.approx(first)

    assert await world.retry_at(first - 1) == 0  # not before its time
    assert await world.retry_at(first) == 1
    queued = await world.spool.get(msg.id)
    assert queued is not None and queued.attempts == 2
    second = first + retry_delay(2, MIN, MAX, msg.id)
    assert second - first >= 2 * MIN
    assert await world.retry_at(second - 1) == 0
    assert await world.retry_at(second) == 1

    assert [m.rcpts for m in world.sink.messages] == [["bob@example.org"]]
    assert await world.spool.get(msg.id) is None
    assert [e for e, _, _ in world.outcomes()] == ["deferred", "deferred", "delivered"]


async def test_550_sends_a_dsn_to_the_sender_and_removes_the_original(world: World) -> None:
    world.sink.rcpt_reply = lambda rcpt: "550 5.1.1 No such user" if rcpt != SENDER else None
    msg = await world.send("nobody@example.org")
    assert world.originals() == []
    [dsn] = world.dsns()
    assert dsn.rcpts == [SENDER]
    assert parse(dsn.data).get_content_type() == "multipart/report"
    group = dsn_recipients(dsn)["nobody@example.org"]
    assert (group["Action"], group["Status"]) == ("failed", "5.1.1")
    assert "550 5.1.1 No such user" in group["Diagnostic-Code"]
    assert await world.spool.get(msg.id) is None and world.spool.size() == 0
    assert ("bounced", "nobody@example.org", 550) in world.outcomes()


async def test_mixed_outcomes_in_one_message(world: World) -> None:
    replies = {
        "nobody@example.org": "550 5.1.1 No such user",
        "later@example.net": "452 4.2.2 Mailbox full",
    }
    world.sink.rcpt_reply = replies.get
    rcpts = ("ok@example.org", "nobody@example.org", "later@example.net", "ok@example.com")
    msg = await world.send(*rcpts)
    # The domains share one route: one transaction carried the two accepted recipients.
    assert [m.rcpts for m in world.originals()] == [["ok@example.org", "ok@example.com"]]
    [dsn] = world.dsns()
    assert list(dsn_recipients(dsn)) == ["nobody@example.org"]
    queued = await world.spool.get(msg.id)
    assert queued is not None
    assert (queued.rcpts, queued.state, queued.attempts) == (
        ["later@example.net"],
        QueueState.DEFERRED,
        1,
    )
    assert "Mailbox full" in queued.last_error
    outcomes = world.outcomes()
    assert sorted(o for o in outcomes if o[1] in rcpts) == [
        ("bounced", "nobody@example.org", 550),
        ("deferred", "later@example.net", 452),
        ("delivered", "ok@example.com", 250),
        ("delivered", "ok@example.org", 250),
    ]


async def test_expiry_after_queue_lifetime_bounces_with_4_4_7(world: World) -> None:
    world.sink.rcpt_reply = lambda rcpt: "451 4.3.0 not now" if rcpt != SENDER else None
    msg = await world.send("later@example.org")
    attempts = 1
    while True:  # retried at its back-off times until the lifetime is over
        queued = await world.spool.get(msg.id, with_data=False)
        if queued is None:
            break
        assert queued.received_at + LIFETIME + MAX >= queued.next_attempt
        assert await world.retry_at(queued.next_attempt) == 1
        attempts += 1
    assert world.clock.now() - msg.received_at >= LIFETIME
    # Each attempt deferred the recipient; the last found the lifetime over: expired, once.
    assert (counter(world, "deferred"), counter(world, "expired")) == (attempts, 1)
    assert counter(world, "bounced") == 0 and counter(world, "delivered") == 0
    assert world.originals() == []
    [dsn] = world.dsns()
    group = dsn_recipients(dsn)["later@example.org"]
    assert group["Status"] == "4.4.7"
    assert "delivery time expired" in group["Diagnostic-Code"]
    assert "not now" in group["Diagnostic-Code"]
    expired = [e for e in published(world) if isinstance(e, QueueChange)]
    assert [(e.event, e.queue_id, e.actor, e.count) for e in expired] == [
        ("expired", msg.id, "relay", 1)
    ]
    assert "not now" in expired[0].reason


async def test_an_expired_bounce_is_dropped_without_a_dsn(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.sink.rcpt_reply = lambda rcpt: "451 4.3.0 not now"
    msg = await world.send("someone@example.org", sender="")
    caplog.set_level(logging.INFO, logger="relay.queue.schedule")
    assert await world.retry_at(msg.received_at + LIFETIME / 3) == 1
    assert await world.spool.get(msg.id) is None and world.spool.size() == 0
    assert world.sink.messages == []
    expired = [r for r in caplog.records if getattr(r, "event", "") == "expired"]
    assert [r.fields["queue_id"] for r in expired] == [msg.id]  # type: ignore[attr-defined]
    assert expired[0].levelno == logging.INFO


async def test_a_bounce_that_bounces_is_not_bounced_again(world: World) -> None:
    world.sink.rcpt_reply = lambda rcpt: "550 5.1.1 No such user"
    msg = await world.send("gone@example.org", sender="")
    assert world.sink.messages == []
    assert await world.spool.get(msg.id) is None and world.spool.size() == 0


# -- held mail ---------------------------------------------------------------------------


async def suspend(world: World) -> None:
    await world.registry.set_state(ORIGIN, ConnState.SUSPENDED, "anomaly", "test")


async def resume(world: World) -> None:
    await world.registry.set_state(ORIGIN, ConnState.CONNECTED, "", "test")
    await world.scheduler.drain()


async def test_suspended_origin_is_held_not_delivered_not_dropped(world: World) -> None:
    await suspend(world)
    msg = await world.send("bob@example.org")
    queued = await world.spool.get(msg.id)
    assert queued is not None
    assert (queued.state, queued.hold_reason) == (QueueState.HELD, f"suspended: {ORIGIN}")
    assert await world.retry_at(world.clock.now() + LIFETIME * 2) == 0
    assert world.sink.messages == [] and await world.spool.get(msg.id) is not None

    await resume(world)  # released and delivered at once, without waiting for a scan
    assert [m.rcpts for m in world.sink.messages] == [["bob@example.org"]]
    assert await world.spool.get(msg.id) is None


async def test_suspension_holds_mail_already_queued(world: World) -> None:
    world.sink.data_replies = ["451 4.3.0 try later"]
    msg = await world.send("bob@example.org")
    await suspend(world)
    queued = await world.spool.get(msg.id)
    assert queued is not None and queued.state == QueueState.HELD
    assert await world.retry_at(queued.next_attempt + MAX) == 0
    assert world.sink.messages == []
    await resume(world)
    assert [m.rcpts for m in world.sink.messages] == [["bob@example.org"]]


def published(world: World) -> list[Event]:
    """Every event published since the last call."""
    found: list[Event] = []
    while not world.events.queue.empty():
        found.append(world.events.queue.get_nowait())
    return found


async def test_holds_releases_and_outcomes_are_published_for_the_mail_log(world: World) -> None:
    world.sink.data_replies = ["451 4.3.0 try later"]
    msg = await world.send("bob@example.org")
    world.clock.advance(3)
    await suspend(world)  # its connection's mail held at once
    await resume(world)  # and released: delivered at once
    found = published(world)
    changes = [
        (e.event, e.queue_id, e.connection, e.actor, e.count)
        for e in found
        if isinstance(e, QueueChange)
    ]
    assert changes == [("held", "", ORIGIN, "relay", 1), ("released", "", ORIGIN, "relay", 1)]
    hop = f"{world.sink.host}:{world.sink.port}"
    outcomes = [e for e in found if isinstance(e, Outcome) and e.queue_id == msg.id]
    assert [(o.event, o.hop, o.status, o.sender, o.attempt, o.delay) for o in outcomes] == [
        ("deferred", hop, "4.3.0", SENDER, 1, 0.0),
        ("delivered", hop, "2.0.0", SENDER, 2, 3.0),
    ]


async def test_inbound_mail_is_not_held_by_a_suspension(world: World) -> None:
    await suspend(world)
    msg = world.message("clerk@gov.kz", sender="someone@example.org", connection="")
    await world.scheduler.enqueue(msg)
    await world.scheduler.drain()
    assert [m.rcpts for m in world.sink.messages] == [["clerk@gov.kz"]]


async def test_operator_held_mail_stays_held_after_resume(world: World) -> None:
    world.sink.data_replies = ["451 4.3.0 try later"]
    msg = await world.send("bob@example.org")
    assert await world.spool.hold([msg.id], reason="operator: investigating") == 1
    await suspend(world)
    await resume(world)
    assert await world.retry_at(world.clock.now() + MAX * 2) == 0
    queued = await world.spool.get(msg.id)
    assert queued is not None
    assert (queued.state, queued.hold_reason) == (QueueState.HELD, "operator: investigating")
    assert world.sink.messages == []


async def test_disconnected_origin_keeps_its_mail_held(world: World) -> None:
    world.sink.data_replies = ["451 4.3.0 try later"]
    msg = await world.send("bob@example.org")
    await world.registry.set_state(ORIGIN, ConnState.DISCONNECTED, "contract ended", "test")
    queued = await world.spool.get(msg.id)
    assert queued is not None
    assert (queued.state, queued.hold_reason) == (QueueState.HELD, f"disconnected: {ORIGIN}")
    assert await world.retry_at(world.clock.now() + LIFETIME * 2) == 0
    assert world.sink.messages == []


# -- concurrency, stop and restart -------------------------------------------------------


async def test_a_message_in_flight_is_not_attempted_again(world: World) -> None:
    gate = world.sink.data_gate = asyncio.Event()
    msg = world.message("bob@example.org")
    await world.scheduler.enqueue(msg)
    await world.sink.wait_until(lambda: world.sink.in_data == 1, 10, "DATA in progress")
    assert await world.scheduler.run_due() == 0  # it is due (active) but in flight
    gate.set()
    await world.scheduler.drain()
    assert len(world.sink.messages) == 1


async def test_stop_cancels_attempts_and_keeps_their_mail(world: World) -> None:
    world.sink.data_gate = asyncio.Event()
    msg = world.message("bob@example.org")
    await world.scheduler.enqueue(msg)
    await world.sink.wait_until(lambda: world.sink.in_data == 1, 10, "DATA in progress")
    await world.scheduler.stop(grace=0)
    assert world.sink.messages == []
    assert await world.spool.get(msg.id) is not None  # a duplicate is better than a loss


async def test_mail_recovered_after_a_restart_is_delivered_by_the_first_scan(
    world: World,
) -> None:
    world.sink.data_replies = ["451 4.3.0 try later"]
    deferred = await world.send("bob@example.org")
    await world.scheduler.stop(grace=0)
    fresh = world.message("carol@example.org")
    await world.scheduler.enqueue(fresh)  # stopped: durable, but no attempt now
    assert world.sink.messages == []

    await world.restart()
    queued = await world.spool.get(deferred.id)
    assert queued is not None
    world.clock.set(queued.next_attempt)
    await world.scheduler.start()
    await world.sink.wait_for(2)
    await world.scheduler.drain()
    assert sorted(r for m in world.sink.messages for r in m.rcpts) == [
        "bob@example.org",
        "carol@example.org",
    ]
    assert world.spool.size() == 0


async def test_mail_held_for_a_connection_resumed_while_down_is_released_at_start(
    world: World,
) -> None:
    await suspend(world)
    msg = await world.send("bob@example.org")
    await world.scheduler.stop(grace=0)
    conn = await world.store.get(ORIGIN)
    assert conn is not None  # resumed by the CLI while the node is down:
    await world.store.put(dataclasses.replace(conn, state=ConnState.CONNECTED))
    await world.restart()
    queued = await world.spool.get(msg.id)
    assert queued is not None and queued.state == QueueState.HELD
    await world.scheduler.start()
    await world.sink.wait_for(1)
    await world.scheduler.drain()
    assert [m.rcpts for m in world.sink.messages] == [["bob@example.org"]]


async def test_mail_of_a_connection_suspended_while_down_is_held_at_start(
    world: World,
) -> None:
    world.sink.data_replies = ["451 4.3.0 try later"]
    msg = await world.send("bob@example.org")
    await world.scheduler.stop(grace=0)
    conn = await world.store.get(ORIGIN)
    assert conn is not None
    await world.store.put(dataclasses.replace(conn, state=ConnState.SUSPENDED))
    await world.restart()
    await world.scheduler.start()
    queued = await world.spool.get(msg.id)
    assert queued is not None
    assert (queued.state, queued.hold_reason) == (QueueState.HELD, f"suspended: {ORIGIN}")


async def test_scan_updates_the_queue_gauge(world: World) -> None:
    world.sink.data_replies = ["451 4.3.0 try later"]
    await world.send("bob@example.org")
    await world.scheduler.run_due()
    value = world.metrics.registry.get_sample_value("ugem_queue_messages", {"state": "deferred"})
    assert value == 1


async def test_a_scan_during_the_commit_does_not_start_the_message_twice(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan that lands between the commit's fsync and enqueue's next step finds the
    message in the spool; it must not start it a second time."""
    real_commit = world.spool.commit

    async def commit_then_scan(msg: QueuedMessage) -> None:
        await real_commit(msg)
        await world.scheduler.run_due()

    monkeypatch.setattr(world.spool, "commit", commit_then_scan)
    msgs = [world.message(f"r{i}@example.org") for i in range(5)]
    for msg in msgs:
        await world.scheduler.enqueue(msg)
    await world.scheduler.drain()
    await world.sink.wait_for(len(msgs))
    arrived = sorted(m.rcpts[0] for m in world.sink.messages)
    assert arrived == sorted(m.original_rcpts[0] for m in msgs)


# -- a spool that cannot record an outcome (issue 10, finding 2) ---------------------------


async def test_a_delivery_the_spool_cannot_record_is_never_sent_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The removal after a delivery fails (a full disk): no second copy at any later scan."""
    failing = {"on": True}
    remove, update = world.spool.remove, world.spool.update

    async def broken_remove(msg_id: str) -> None:
        if failing["on"]:
            raise SpoolFullError("spool is full: database or disk is full")
        await remove(msg_id)

    async def broken_update(msg: QueuedMessage) -> None:
        if failing["on"]:
            raise SpoolError("spool failed: disk I/O error")
        await update(msg)

    monkeypatch.setattr(world.spool, "remove", broken_remove)
    monkeypatch.setattr(world.spool, "update", broken_update)
    first = await world.send("bob@example.org")
    assert len(world.originals()) == 1
    ok, reason = world.scheduler.health()
    assert not ok and "not yet recorded" in reason and "disk is full" in reason
    assert world.metrics.registry.get_sample_value("ugem_deliveries_unrecorded") == 1.0
    second = world.message("carol@example.org")
    await world.scheduler.enqueue(second)  # taken, but not sent while an outcome waits
    await world.scheduler.drain()
    for step in range(1, 6):  # every back-off passes: nothing is sent again
        assert await world.retry_at(world.clock.now() + MAX * step) == 0
    assert [m.rcpts for m in world.originals()] == [["bob@example.org"]]
    failing["on"] = False  # space is back
    assert await world.retry_at(world.clock.now() + 1) == 1  # only carol's, once
    assert world.scheduler.health() == (True, "ok")
    assert await world.spool.get(first.id) is None
    assert sorted(r for m in world.originals() for r in m.rcpts) == [
        "bob@example.org",
        "carol@example.org",
    ]
    assert await world.retry_at(world.clock.now() + MAX * 10) == 0
    assert len(world.originals()) == 2


# -- what the replies say: classes in the events, metrics, and the back-off of a destination


def outcome_events(world: World) -> dict[str, Outcome]:
    """rcpt -> the last Outcome published for it so far."""
    found: dict[str, Outcome] = {}
    while not world.events.queue.empty():
        ev = world.events.queue.get_nowait()
        if isinstance(ev, Outcome):
            found[ev.rcpt] = ev
    return found


def replies(world: World, by: str, value: str, cls: str) -> float | None:
    name = "ugem_delivery_replies_total" if by == "connection" else "ugem_destination_replies_total"
    return world.metrics.registry.get_sample_value(name, {by: value, "class": cls})


SPAMHAUS = "550 5.7.1 Service unavailable; client host [192.0.2.1] blocked using Spamhaus"


async def test_outcome_events_carry_the_reply_class_and_the_blocklist(world: World) -> None:
    refusals = {"spam@example.org": SPAMHAUS, "nobody@example.com": "550 5.1.1 No such user"}
    world.sink.rcpt_reply = refusals.get
    await world.send("ok@example.org", "spam@example.org", "nobody@example.com")
    events = outcome_events(world)
    seen = {
        rcpt: (ev.event, ev.reply_class, ev.blocklist, ev.counted) for rcpt, ev in events.items()
    }
    assert seen == {
        "ok@example.org": ("delivered", "delivered", "", 250),
        "spam@example.org": ("bounced", "blocklisted", "Spamhaus", 554),
        "nobody@example.com": ("bounced", "unknown-user", "", 550),
        SENDER: ("delivered", "delivered", "", 0),  # the DSN: no connection, nothing counted
    }
    assert replies(world, "connection", ORIGIN, "blocklisted") == 1
    assert replies(world, "connection", ORIGIN, "delivered") == 1
    assert replies(world, "destination", "other", "blocklisted") == 1  # example.org's class
    assert replies(world, "destination", "other", "unknown-user") == 1  # example.com's
    assert replies(world, "connection", "none", "delivered") == 1  # the DSN to the sender
    record = trace_record(events["spam@example.org"])  # the trace's format is unchanged
    assert record is not None and set(record) == {
        "ts",
        "connection",
        "ip",
        "event",
        "rcpt",
        "code",
        "counted",
    }


async def test_a_next_hops_long_replies_are_cached_by_what_is_classified(world: World) -> None:
    """A hostile next hop answers each recipient with a different reply of thousands of
    characters: each is classified from its first MAX_TEXT, and only that is kept."""
    padding = "x" * 7000
    world.sink.rcpt_reply = lambda rcpt: (
        None if rcpt == SENDER else f"550 5.1.1 No such user {rcpt} {padding}"
    )
    await world.send("a@example.org", "b@example.org", "c@example.org")
    events = outcome_events(world)
    assert {events[r].reply_class for r in ("a@example.org", "b@example.org")} == {"unknown-user"}
    assert max(len(said) for _, said in world.scheduler._classes) <= MAX_TEXT


async def test_an_operators_reply_table_decides_the_class(world: World) -> None:
    table = world.tmp / "replies.toml"
    table.write_text(
        '[[rule]]\nclass = "policy"\nregex = \'\\bquux\\b\'\nsource = "a test"\n', encoding="utf-8"
    )
    world.scheduler.patterns = configured_patterns(str(table))
    world.sink.rcpt_reply = lambda rcpt: "550 5.0.0 Quux says no" if rcpt != SENDER else None
    await world.send("bob@example.org")
    ev = outcome_events(world)["bob@example.org"]
    assert (ev.reply_class, ev.counted) == ("policy", 554)  # "other" by the packaged table


async def test_a_rate_limit_reply_holds_its_destination_back_without_counting_attempts(
    world: World,
) -> None:
    tried: list[str] = []

    def rate_limited(rcpt: str) -> str | None:
        tried.append(rcpt)
        return "450 4.7.28 try again later"  # only the status says it is a rate limit

    world.sink.rcpt_reply = rate_limited
    first = await world.send("bob@example.org")
    ev = outcome_events(world)["bob@example.org"]
    assert (ev.event, ev.code, ev.reply_class, ev.counted) == ("deferred", 450, "rate-limited", 421)
    key = f"route:{world.sink.host}:{world.sink.port}"
    backoff = world.scheduler.backoff
    delay = world.config.rate_limit_delay
    assert (backoff.limit(key), backoff.spacing(key)) == (10, delay)  # 20 halved
    now = world.clock.now()
    second = await world.send("carol@example.org")
    assert tried == ["bob@example.org"]  # carol's was not tried
    assert outcome_events(world) == {}  # and nothing was published for it
    kept = await world.spool.get(second.id)
    assert kept is not None and (kept.state, kept.attempts) == (QueueState.DEFERRED, 0)
    assert now + delay <= kept.next_attempt < now + 2 * delay
    assert "backing off after rate limits" in kept.last_error
    world.sink.rcpt_reply = None  # the destination takes mail again
    assert await world.retry_at(now + 2 * delay) == 1  # carol's (bob's retry is not due)
    assert [m.rcpts for m in world.originals()] == [["carol@example.org"]]
    assert (backoff.limit(key), backoff.spacing(key)) == (10, 0.0)  # a doubling undone
    assert await world.retry_at(first.received_at + MAX) == 1
    assert sorted(r for m in world.originals() for r in m.rcpts) == [
        "bob@example.org",
        "carol@example.org",
    ]
    assert await world.spool.get(first.id) is None and await world.spool.get(second.id) is None


# -- a drain: paused, idle, resumed ------------------------------------------------------


async def test_a_paused_scheduler_queues_but_starts_no_attempt(world: World) -> None:
    world.scheduler.pause()
    msg = await world.send("bob@example.org")  # durable, not attempted
    assert await world.retry_at(world.clock.now() + 1) == 0
    assert world.sink.messages == [] and world.scheduler.idle()
    queued = await world.spool.get(msg.id)
    assert queued is not None and (queued.state, queued.attempts) == (QueueState.ACTIVE, 0)
    world.scheduler.resume()
    assert await world.retry_at(world.clock.now() + 1) == 1
    assert [m.rcpts for m in world.originals()] == [["bob@example.org"]]


async def test_idle_only_once_the_attempts_in_flight_end(world: World) -> None:
    world.sink.data_gate = asyncio.Event()
    await world.scheduler.enqueue(world.message("bob@example.org"))
    await world.sink.wait_until(lambda: world.sink.in_data == 1, 5, "the attempt in DATA")
    world.scheduler.pause()
    assert (world.scheduler.in_flight(), world.scheduler.idle()) == (1, False)
    world.sink.data_gate.set()
    await world.scheduler.drain()
    assert (world.scheduler.in_flight(), world.scheduler.idle()) == (0, True)
    assert world.spool.size() == 0  # its outcome is written: nothing moves under a drain


async def test_mail_over_the_in_flight_cap_starts_as_attempts_end_not_a_scan_later(
    world: World,
) -> None:
    """The cap leaves mail in the spool; the attempts in flight ending (to half the cap)
    start a scan at once, so a backlog never waits for scan_interval with nothing sent."""
    world.scheduler.config = dataclasses.replace(world.config, scan_interval=600.0)
    world.scheduler.max_in_flight = 2
    world.sink.data_gate = asyncio.Event()
    await world.scheduler.start()
    await world.scheduler.run_due()
    for _ in range(6):
        await world.scheduler.enqueue(world.message("bob@example.org"))
    assert world.scheduler.in_flight() == 2  # four wait in the spool
    world.sink.data_gate.set()
    await world.sink.wait_for(6)  # within the test's timeout, not 600 s
    assert len({m.data for m in world.sink.messages}) == 6
