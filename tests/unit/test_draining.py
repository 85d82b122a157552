"""A worker's part in a drain (ugem.draining.DrainWatch), over a scheduler and a listener
that only record what they are told, and the drain's files in tmp_path."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from relay import replies
from relay.replies import Reply
from ugem.core.clock import FakeClock
from ugem.core.drain_state import DrainFiles, DrainRequest
from ugem.core.metrics import Metrics
from ugem.draining import DrainWatch

REQUEST = DrainRequest("req1", "gw-b.test:8025", 1_767_225_600.0, "cli:op")


@dataclass
class Deliveries:
    paused: bool = False
    running: int = 0

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def in_flight(self) -> int:
        return self.running

    def idle(self) -> bool:
        return self.running == 0


@dataclass
class Doors:
    refusals: list[Reply | None] = field(default_factory=list)
    open_sessions: int = 0

    def refuse(self, reply: Reply | None) -> None:
        self.refusals.append(reply)

    def session_count(self) -> int:
        return self.open_sessions

    def quiet(self) -> bool:
        return self.open_sessions == 0


async def watching(files: DrainFiles) -> tuple[DrainWatch, Deliveries, Doors]:
    deliveries, doors = Deliveries(), Doors()
    watch = DrainWatch(files, 0, deliveries, Metrics(), FakeClock())
    await watch.begin()
    watch.attach(doors)
    return watch, deliveries, doors


async def test_a_request_pauses_the_worker_and_cancelling_resumes_it(tmp_path: Path) -> None:
    files = DrainFiles(tmp_path / "drain")
    watch, deliveries, doors = await watching(files)
    assert (watch.refusal(), deliveries.paused, doors.refusals) == (None, False, [])
    assert files.running_workers() == [0]  # its lock is held while it runs
    deliveries.running, doors.open_sessions = 2, 1
    files.ask(REQUEST)
    await watch.check()
    assert deliveries.paused and doors.refusals == [replies.DRAINING]
    refusal = watch.refusal()
    assert refusal is not None and refusal.startswith("draining into gw-b.test:8025 since")
    answer = files.answer(0)
    assert answer is not None
    assert (answer.request, answer.in_flight, answer.sessions, answer.quiet) == (
        "req1",
        2,
        1,
        False,
    )
    assert answer.pid == os.getpid()
    deliveries.running, doors.open_sessions = 0, 0
    await watch.check()
    answer = files.answer(0)
    assert answer is not None and answer.quiet
    files.clear()
    await watch.check()
    assert not deliveries.paused and doors.refusals[-1] is None and watch.refusal() is None
    assert files.answer(0) is None
    watch.close()
    assert files.running_workers() == []


async def test_a_worker_started_during_a_drain_starts_paused(tmp_path: Path) -> None:
    files = DrainFiles(tmp_path / "drain")
    files.ask(REQUEST)
    watch, deliveries, doors = await watching(files)
    assert deliveries.paused  # before its scheduler ever started
    assert doors.refusals == [replies.DRAINING]  # and its listener refuses from the start
    watch.close()


def test_a_killed_workers_lock_is_free_at_once(tmp_path: Path) -> None:
    files = DrainFiles(tmp_path / "drain")
    code = (
        "import sys, time; from pathlib import Path; from ugem.core.drain_state import DrainFiles;"
        f"l = DrainFiles(Path({str(files.directory)!r})).worker_lock(3); l.try_acquire();"
        "print('held', flush=True); time.sleep(60)"
    )
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE) as child:
        try:
            assert child.stdout is not None and child.stdout.readline() == b"held\n"
            assert files.running_workers() == [3]
            child.kill()  # SIGKILL: no chance to let go of anything
            child.wait(10)
            assert files.running_workers() == []
        finally:
            child.kill()


async def test_stop_accepting_refuses_mail_but_delivers_and_may_turn_into_a_drain(
    tmp_path: Path,
) -> None:
    files = DrainFiles(tmp_path / "drain")
    watch, deliveries, doors = await watching(files)
    local = dataclasses.replace(REQUEST, id="req2", to="")
    files.ask(local)
    await watch.check()
    assert not deliveries.paused and doors.refusals == [replies.DRAINING]
    refusal = watch.refusal()
    assert refusal is not None and refusal.startswith("not accepting mail since")
    assert refusal.endswith("delivering its queue")
    files.ask(REQUEST)  # now into another node: delivery stops
    await watch.check()
    assert deliveries.paused
    files.ask(local)  # and back
    await watch.check()
    assert not deliveries.paused
    files.clear()
    await watch.check()
    assert not deliveries.paused and doors.refusals[-1] is None and watch.refusal() is None
    watch.close()
