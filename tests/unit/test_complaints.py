"""ugem.core.services.complaints: each complaint traced (by this gateway's queue id and the
client address in its Received: field, by DKIM d= / i=, by the sender's domain, or not at
all), kept in the store within its cap (the oldest dropped and counted), listed by
connection and time, counted in ugem_complaints_total, announced on the bus, logged."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from relay.queue.message import new_queue_id
from tests.support.connections import plain
from tests.support.feedback import (
    DSN,
    RFC5965_B1,
    RFC5965_B2,
    YAHOO_STYLE,
    arf,
    crlf,
    microsoft_style,
    ours,
)
from ugem.core.clock import FakeClock
from ugem.core.errors import StoreError, UsageError
from ugem.core.events import Complained, EventBus, Subscription
from ugem.core.feedback import ReportFormat
from ugem.core.metrics import Metrics
from ugem.core.model import ConnState
from ugem.core.registry import Registry
from ugem.core.services.complaints import (
    KIND,
    Attribution,
    Complaint,
    ComplaintService,
    Tally,
)
from ugem.core.store.sqlite import SqliteStore

MDAI = plain("mdai.gov.kz", "127.0.0.2")
AGENCY = plain("agency.gov.kz", "192.0.2.20")
MINFIN = plain("minfin.gov.kz", "192.0.2.30", domains=("minfin.gov.kz", "mf.kz"))
GONE = dataclasses.replace(plain("gone.gov.kz", "192.0.2.40"), state=ConnState.DISCONNECTED)
ISP = "203.0.113.7"  # where the reports come from


@dataclass
class Scene:
    service: ComplaintService
    store: SqliteStore
    registry: Registry
    clock: FakeClock
    metrics: Metrics
    events: Subscription

    async def receive(self, raw: bytes) -> Complaint:
        return await self.service.receive(raw, ISP, "fbl@isp.test")

    def counted(self, connection: str, feedback_type: str) -> float:
        labels = {"connection": connection, "feedback_type": feedback_type}
        return self.metrics.registry.get_sample_value("ugem_complaints_total", labels) or 0.0


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    store = SqliteStore(tmp_path / "registry.db")
    for conn in (MDAI, AGENCY, MINFIN, GONE):
        await store.add(conn)
    clock, metrics, bus = FakeClock(), Metrics(), EventBus()
    registry = Registry(store, clock)
    await registry.sync()
    service = ComplaintService(store, clock, registry, bus, metrics, cap=5)
    yield Scene(service, store, registry, clock, metrics, bus.subscribe("test"))
    await store.close()


def original(*headers: str, body: str = "spam\n") -> bytes:
    return crlf("\n".join(headers) + "\n\n" + body)


# -- attribution -----------------------------------------------------------------------------


async def test_by_queue_id_the_received_field_names_the_client(scene: Scene) -> None:
    queue_id = new_queue_id()
    complaint = await scene.receive(microsoft_style(queue_id, "127.0.0.2"))
    assert (complaint.connection, complaint.attributed_by) == ("mdai.gov.kz", Attribution.QUEUE_ID)
    assert complaint.evidence == f"queue id {queue_id} from 127.0.0.2"
    assert complaint.queue_id == queue_id
    assert (complaint.feedback_type, complaint.format) == ("abuse", ReportFormat.ARF)
    assert complaint.message_id == "<digest-17@mdai.gov.kz>"
    assert complaint.source_ip == "198.51.100.25"


async def test_the_queue_id_comes_before_what_the_sender_wrote(scene: Scene) -> None:
    queue_id, forged = new_queue_id(), new_queue_id()
    raw = arf(
        original(
            "Received: by mx.isp.test; Tue, 12 Jan 2027 08:10:41 +0000",
            ours(queue_id, "127.0.0.2").strip(),
            ours(forged, "192.0.2.20").strip(),  # written by the sender, below ours
            "DKIM-Signature: v=1; d=agency.gov.kz; s=x; b=x",
            "From: <news@agency.gov.kz>",
        ),
        Original_Mail_From="<news@agency.gov.kz>",
    )
    complaint = await scene.receive(raw)
    assert (complaint.connection, complaint.queue_id) == ("mdai.gov.kz", queue_id)


async def test_by_dkim_d(scene: Scene) -> None:
    complaint = await scene.receive(YAHOO_STYLE)
    assert (complaint.connection, complaint.attributed_by) == ("agency.gov.kz", Attribution.DKIM)
    assert complaint.evidence == "DKIM-Signature d=agency.gov.kz"
    assert complaint.user_agent == "Yahoo!-Mail-Feedback/2.0"
    assert complaint.arrival_date == "Tue, 12 Jan 2027 08:10:41 +0000"  # Received-Date
    assert complaint.original_rcpt_to == ("redacted@yahoo.test",)
    assert complaint.reported_domains == ("agency.gov.kz",)


async def test_by_dkim_i_when_d_is_no_connections(scene: Scene) -> None:
    raw = arf(
        original(
            "DKIM-Signature: v=1; a=rsa-sha256; d=esp.example;\r\n\ts=s1; i=news@esp.example",
            "DKIM-Signature: v=1; a=rsa-sha256; d=esp2.example; s=s1;\r\n i = @MF.kz ; b=x",
            "From: <news@esp.example>",
        )
    )
    complaint = await scene.receive(raw)
    assert (complaint.connection, complaint.attributed_by) == ("minfin.gov.kz", Attribution.DKIM)
    assert complaint.evidence == "DKIM-Signature i=@MF.kz"


async def test_by_the_original_mail_from_domain(scene: Scene) -> None:
    await scene.store.add(plain("example.net", "192.0.2.99"))
    await scene.registry.sync()
    complaint = await scene.receive(RFC5965_B2)  # the RFC's own example
    assert (complaint.connection, complaint.attributed_by) == (
        "example.net", Attribution.SENDER_DOMAIN,
    )  # fmt: skip
    assert complaint.evidence == "Original-Mail-From: <somespammer@example.net>"
    assert complaint.original_mail_from == "<somespammer@example.net>"
    assert complaint.original_rcpt_to == ("<user@example.com>",)


async def test_by_the_return_path_of_a_dsn(scene: Scene) -> None:
    complaint = await scene.receive(DSN)
    assert (complaint.connection, complaint.attributed_by) == (
        "minfin.gov.kz", Attribution.SENDER_DOMAIN,
    )  # fmt: skip
    assert complaint.evidence == "Return-Path: <clerk@minfin.gov.kz>"
    assert (complaint.format, complaint.feedback_type) == (ReportFormat.DSN, "delivery-status")


async def test_by_the_from_field_then_the_reported_domain(scene: Scene) -> None:
    by_from = await scene.receive(arf(original('From: "Mdai" <info@MDAI.gov.kz.>')))
    assert (by_from.connection, by_from.evidence) == (
        "mdai.gov.kz", 'From: "Mdai" <info@MDAI.gov.kz.>',
    )  # fmt: skip
    reported = await scene.receive(arf(original("From: <x@else.test>"), Reported_Domain="mf.kz"))
    assert (reported.connection, reported.evidence) == ("minfin.gov.kz", "Reported-Domain: mf.kz")


async def test_untraced_the_rfc_example_and_a_foreign_queue_id(scene: Scene) -> None:
    rfc = await scene.receive(RFC5965_B1)
    assert (rfc.connection, rfc.attributed_by) == ("", Attribution.NONE)
    assert rfc.evidence == (
        "no Received: of this gateway, DKIM-Signature or sender names a connection"
    )
    queue_id = new_queue_id()
    inbound = await scene.receive(microsoft_style(queue_id, "198.51.100.77").replace(
        b"mdai.gov.kz", b"nobody.test"
    ))  # fmt: skip
    assert (inbound.connection, inbound.queue_id) == ("", queue_id)
    assert inbound.evidence == (
        f"queue id {queue_id} from 198.51.100.77, which is no connection's server"
    )


async def test_a_disconnected_connection_is_not_blamed(scene: Scene) -> None:
    complaint = await scene.receive(arf(original("From: <a@gone.gov.kz>")))
    assert complaint.connection == ""


async def test_an_unparsable_report_is_kept_untraced_with_the_reason(scene: Scene) -> None:
    nested = b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' * 100
    complaint = await scene.receive(nested)
    assert (complaint.format, complaint.feedback_type) == (ReportFormat.UNPARSED, "unknown")
    assert complaint.evidence == complaint.problem == "more than 64 multipart or message parts"
    assert (await scene.service.list()) == [complaint]


# -- kept, counted, announced ----------------------------------------------------------------


async def test_kept_numbered_and_read_back_alike(scene: Scene) -> None:
    first = await scene.receive(YAHOO_STYLE)
    scene.clock.advance(60)
    second = await scene.receive(DSN)
    assert (first.id, second.id) == (1, 2)
    assert second.received_at == first.received_at + 60
    assert (second.client_ip, second.sender, second.size) == (ISP, "fbl@isp.test", len(DSN))
    assert await scene.service.list() == [second, first]
    assert Complaint.from_dict(first.to_dict()) == first


async def test_listed_by_connection_time_and_limit(scene: Scene) -> None:
    await scene.receive(YAHOO_STYLE)  # agency, at t
    scene.clock.advance(3600)
    await scene.receive(DSN)  # minfin, at t+3600
    scene.clock.advance(3600)
    await scene.receive(RFC5965_B1)  # untraced, at t+7200
    await scene.receive(YAHOO_STYLE)  # agency, at t+7200
    service, start = scene.service, scene.clock.now() - 7200
    assert [c.id for c in await service.list()] == [4, 3, 2, 1]
    assert [c.id for c in await service.list("agency.gov.kz")] == [4, 1]
    assert [c.id for c in await service.list("")] == [3]
    assert [c.id for c in await service.list(since=start + 3600)] == [4, 3, 2]
    assert [c.id for c in await service.list("agency.gov.kz", since=start + 1)] == [4]
    assert [c.id for c in await service.list(limit=1)] == [4]
    with pytest.raises(UsageError, match="limit"):
        await service.list(limit=0)


async def test_the_cap_drops_the_oldest_and_counts_them(scene: Scene) -> None:
    for _ in range(7):
        await scene.receive(YAHOO_STYLE)
    assert [c.id for c in await scene.service.list()] == [7, 6, 5, 4, 3]
    assert await scene.service.tally() == Tally(received=7, kept=5, dropped=2, cap=5)


async def test_counted_per_connection_and_feedback_type(scene: Scene) -> None:
    await scene.receive(YAHOO_STYLE)
    await scene.receive(YAHOO_STYLE)
    await scene.receive(arf(original("From: <a@mdai.gov.kz>"), "fraud"))
    await scene.receive(b"")
    assert scene.counted("agency.gov.kz", "abuse") == 2
    assert scene.counted("mdai.gov.kz", "fraud") == 1
    assert scene.counted("none", "abuse") == 1  # the empty message: a plain report, untraced


async def test_announced_on_the_bus_and_logged(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "ugem.core.services.complaints")
    complaint = await scene.receive(YAHOO_STYLE)
    announced = await asyncio.wait_for(scene.events.get(), 1)
    assert announced == Complained(
        complaint.received_at, "agency.gov.kz", complaint.id, "abuse", "dkim"
    )
    [line] = [r for r in caplog.records if getattr(r, "event", "") == "complaint_received"]
    assert line.levelno == logging.INFO
    assert line.__dict__["fields"]["connection"] == "agency.gov.kz"


async def test_a_damaged_stored_complaint_is_a_store_error(scene: Scene) -> None:
    await scene.store.journal_append(KIND, '{"id": "not this"}', 5)
    with pytest.raises(StoreError, match="stored complaint 1 is damaged"):
        await scene.service.list()


async def test_kept_texts_are_bounded(scene: Scene) -> None:
    many = [f"X-Header-{i}: " + "v" * 900 for i in range(100)]
    fields = {f"X_Field_{i}": "w" * 900 for i in range(40)}
    complaint = await scene.receive(arf(original(*many), **fields))
    assert sum(len(n) + len(v) for n, v in complaint.original_headers) <= 8 * 1024
    assert sum(len(n) + len(v) for n, v in complaint.fields) <= 4 * 1024
