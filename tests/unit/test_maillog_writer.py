"""The mail log's observer (`ugem.core.maillog_writer`): lines, index batches, daily pruning.

A real bus, a real SQLite index in tmp_path, the node's clock a FakeClock: the
daily prune is driven by moving the clock, and `settle()` stands for the
writer's next flush (it writes everything published so far).
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ugem.core.clock import FakeClock
from ugem.core.config import Config, LogConfig, NodeConfig
from ugem.core.events import Accepted, EventBus, Outcome, StateChanged
from ugem.core.maillog import LOGGER
from ugem.core.maillog_writer import (
    DAY,
    IndexSettings,
    MailLogWriter,
    index_settings,
    writer_from_config,
)
from ugem.core.message_index import Filter, MessageIndex, index_path
from ugem.core.metrics import Metrics


def config(tmp_path: Path, **log: object) -> Config:
    return Config(node=NodeConfig(data_dir=str(tmp_path)), log=LogConfig(**log))  # type: ignore[arg-type]


@dataclasses.dataclass
class Scene:
    bus: EventBus
    clock: FakeClock
    metrics: Metrics
    writer: MailLogWriter
    path: Path

    def accepted(self, queue_id: str) -> None:
        self.bus.publish(
            Accepted(self.clock.now(), queue_id, "gov.kz", "127.0.0.2", "a@gov.kz", ("x@e.org",), 9)
        )

    def found(self, rcpt: str = "") -> list[str]:
        reader = MessageIndex(self.path, readonly=True)
        try:
            return [m.queue_id for m in reader.search(Filter(rcpt=rcpt), 100)[0]]
        finally:
            reader.close()

    def dropped(self) -> float:
        value = self.metrics.registry.get_sample_value(
            "ugem_events_dropped_total", {"observer": "maillog"}
        )
        return value or 0.0


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    bus, clock, metrics = EventBus(), FakeClock(), Metrics()
    settings = index_settings(config(tmp_path, index_days=30))
    assert settings is not None
    writer = MailLogWriter(bus, clock, metrics, settings)
    await writer.start()
    try:
        yield Scene(bus, clock, metrics, writer, index_path(tmp_path))
    finally:
        await writer.stop()


async def test_each_event_about_mail_is_a_line_and_an_indexed_row(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    scene.accepted("Q1")
    scene.bus.publish(StateChanged(scene.clock.now(), "suspended", "gov.kz", "anomaly"))
    scene.bus.publish(
        Outcome(scene.clock.now(), "delivered", "Q1", "gov.kz", "127.0.0.2", "x@e.org", 250)
    )
    await scene.writer.settle()
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == [
        "accepted",
        "delivered",
    ]
    assert scene.found(rcpt="x@e.org") == ["Q1"]


async def test_history_older_than_index_days_is_pruned_once_a_day(scene: Scene) -> None:
    scene.accepted("OLD")
    await scene.writer.settle()
    scene.clock.advance(29 * DAY)
    scene.accepted("NEW")
    await scene.writer.settle()  # a day passed: pruned, but OLD is only 29 days old
    assert scene.found() == ["NEW", "OLD"]
    scene.clock.advance(DAY / 2)
    await scene.writer.settle()  # 29.5 days, and no day since the last prune
    scene.clock.advance(DAY)
    await scene.writer.settle()
    assert scene.found() == ["NEW"]


async def test_a_failing_index_drops_batches_and_says_so_once(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ugem.core.maillog_writer")
    other = sqlite3.connect(scene.path)  # another process breaks the file under the writer
    other.execute("DROP TABLE events")
    other.close()
    for queue_id in ("A", "B"):
        scene.accepted(queue_id)
        await scene.writer.settle()
    MessageIndex(scene.path).close()  # the table is back (its schema is created if missing)
    scene.accepted("C")
    await scene.writer.settle()
    said = [(r.getMessage(), r.levelno) for r in caplog.records]
    assert said == [
        ("message_index_failed", logging.WARNING),
        ("message_index_recovered", logging.INFO),
    ]
    assert caplog.records[-1].__dict__["fields"] == {"lost": 2}
    assert scene.dropped() == 2
    assert scene.found() == ["C"]


async def test_the_lines_and_the_index_each_turn_off(tmp_path: Path) -> None:
    bus, clock, metrics = EventBus(), FakeClock(), Metrics()
    off = config(tmp_path, index_days=0, mail_log="off")
    assert writer_from_config(off, bus, clock, metrics, 0) is None
    only_lines = writer_from_config(config(tmp_path, index_days=0), bus, clock, metrics, 0)
    assert only_lines is not None
    await only_lines.start()
    bus.publish(Accepted(clock.now(), "Q1", "", "203.0.113.9", "a@e.org", ("b@gov.kz",), 9))
    await only_lines.stop()
    assert not index_path(tmp_path).exists()


async def test_an_index_that_cannot_be_opened_leaves_the_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    settings = IndexSettings(lambda: MessageIndex(blocked / "maillog.db"), 30, 1 << 30)
    bus = EventBus()
    writer = MailLogWriter(bus, FakeClock(), Metrics(), settings)
    caplog.set_level(logging.INFO)
    await writer.start()
    bus.publish(Accepted(0.0, "Q1", "", "203.0.113.9", "a@e.org", ("b@gov.kz",), 9))
    await writer.stop()
    said = [(r.name, r.getMessage()) for r in caplog.records]
    assert said == [("ugem.core.maillog_writer", "message_index_unavailable"), (LOGGER, "accepted")]
