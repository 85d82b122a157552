"""The enforcer's rules over a real SQLite store: what a verdict does in each mode.

Enforce mode suspends with actor "detector" once: a second verdict about a
connection that is suspended already changes and counts nothing. A resumed
connection is watched afresh (the detector is told). Shadow mode suspends
nothing, audits `anomaly.would_suspend`, and watches the connection again
only an hour of event time later. Inbound mail (no connection) is not watched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from anomaly.detector import Detector, Verdict
from anomaly.enforce import SHADOW_REARM_S, WOULD_SUSPEND, Enforcer
from ugem.clock import FakeClock
from ugem.errors import ConfigError
from ugem.events import Accepted, EventBus
from ugem.metrics import Metrics
from ugem.model import Connection, ConnState, OrgKind
from ugem.registry import Registry
from ugem.services.audit import AuditLog
from ugem.services.connections import ConnectionService
from ugem.store import open_store

CONN = "akimat.gov.kz"


class SpyDetector(Detector):
    """The real detector, recording which connections it was told to watch afresh."""

    def __init__(self) -> None:
        super().__init__()
        self.resumed: list[str] = []

    def resume(self, connection: str) -> None:
        self.resumed.append(connection)
        super().resume(connection)


@dataclass
class Scene:
    service: ConnectionService
    metrics: Metrics
    detector: SpyDetector

    def enforcer(self, mode: str) -> Enforcer:
        return Enforcer(mode, EventBus(), self.service, self.metrics, self.detector)

    def counted(self, mode: str) -> float | None:
        name = "ugem_detector_suspensions_total"
        return self.metrics.registry.get_sample_value(name, {"mode": mode})

    async def actions(self) -> list[tuple[str, str]]:
        return [(r.entry.actor, r.entry.action) for r in await self.service.audit.list(CONN)]


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    store, clock = open_store(f"sqlite:///{tmp_path / 'u.db'}"), FakeClock()
    conn = Connection(CONN, "Akimat", OrgKind.LOCAL_GOVERNMENT, (CONN,), ("127.0.0.2",))
    try:
        await store.add(conn)
        registry = Registry(store, clock)
        await registry.sync()
        service = ConnectionService(store, registry, AuditLog(store, clock), clock)
        yield Scene(service, Metrics(), SpyDetector())
    finally:
        await store.close()


def verdict(ts: float = 0.0) -> Verdict:
    return Verdict(ts, CONN, "suspend", "412 recipients in 5 min against a usual 9 ± 4")


async def test_enforce_suspends_once_and_a_resumed_connection_is_watched_again(
    scene: Scene,
) -> None:
    enforcer = scene.enforcer("enforce")
    await enforcer.start()
    try:
        await enforcer.act(verdict())
        await enforcer.act(verdict())  # suspended already: not again
        conn = scene.service.registry.get(CONN)
        assert conn is not None and conn.state == ConnState.SUSPENDED
        assert conn.state_reason.startswith("abnormal traffic: 412 recipients")
        assert await scene.actions() == [("detector", "connection.suspend")]
        assert scene.counted("enforce") == 1
        assert scene.detector.resumed == []

        await scene.service.resume(CONN, "cleaned up", "api:noc")
        assert scene.detector.resumed == [CONN]
    finally:
        await enforcer.stop()


async def test_shadow_records_and_watches_again_an_hour_later(scene: Scene) -> None:
    enforcer = scene.enforcer("shadow")
    await enforcer.act(verdict(ts=1000.0))
    conn = scene.service.registry.get(CONN)
    assert conn is not None and conn.state == ConnState.CONNECTED
    assert await scene.actions() == [("detector", WOULD_SUSPEND)]
    assert scene.counted("shadow") == 1 and scene.counted("enforce") is None

    def accepted(ts: float, connection: str = CONN) -> Accepted:
        return Accepted(ts, "q1", connection, "127.0.0.2", f"a@{CONN}", ("x@example.org",), 10)

    enforcer.observe(accepted(1000.0 + SHADOW_REARM_S - 1))
    assert scene.detector.resumed == []
    enforcer.observe(accepted(1000.0 + SHADOW_REARM_S))
    assert scene.detector.resumed == [CONN]
    assert enforcer.observe(accepted(1.0, connection="")) is None


def test_off_is_no_enforcer(scene: Scene) -> None:
    with pytest.raises(ConfigError, match=r"anomaly\.mode"):
        scene.enforcer("off")
