"""`loadtest idle`: its options, its bounds, its report, and its counts against a small server.

The server here (real sockets on loopback) greets the first sessions with
220, the later ones with 421, and closes one greeted session at once: the
report must count greeted, refused by code and dropped apart, hold the
greeted ones until the end, and close every session it opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest

from loadtest.__main__ import main, parser
from loadtest.commands import idle_options
from loadtest.errors import UsageError
from loadtest.idle import IdleOptions, IdleReport, ensure_open_files, hold_idle
from loadtest.memory import MemorySample


def test_options_from_the_command_line() -> None:
    args = parser().parse_args(
        ["idle", "127.0.0.1:2525", "--connections", "5000", "--source", "127.0.0.2-127.0.0.9",
         "--pid", "4242", "--hold", "30s", "--concurrency", "50", "--timeout", "3s", "--json"]
    )  # fmt: skip
    options = idle_options(args)
    assert options == IdleOptions(
        "127.0.0.1", 2525, 5000, tuple(f"127.0.0.{i}" for i in range(2, 10)), 4242, 30.0, 50, 3.0
    )
    assert args.json is True
    defaults = idle_options(parser().parse_args(["idle", "[::1]:25"]))
    assert (defaults.host, defaults.connections, defaults.hold, defaults.pid) == (
        "::1",
        1000,
        5,
        None,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["idle", "10.0.0.1:25"], "not a loopback address"),
        (["idle", "127.0.0.1:25", "--source", "192.168.1.2"], "not a loopback address"),
        (["idle", "127.0.0.1:25", "--connections", "100001"], "--connections must be"),
        (["idle", "127.0.0.1:25", "--hold", "2h"], "--hold must be"),
    ],
)
def test_unbounded_or_off_machine_runs_are_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_numbers_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["idle", "127.0.0.1:25", "--connections", "0"])
    assert exc.value.code == 2
    assert "at least 1" in capsys.readouterr().err


def test_open_files_limit() -> None:
    assert ensure_open_files(64) >= 64
    with pytest.raises(UsageError, match="hard limit"):
        ensure_open_files(2**62)


def _report(**changes: object) -> IdleReport:
    before = MemorySample(700, {700: 40 * 1024, 701: 60 * 1024})
    held = MemorySample(700, {700: 40 * 1024, 701: 160 * 1024})
    fields: dict[str, object] = {
        "options": IdleOptions("127.0.0.1", 2525, 5000, ("127.0.0.2", "127.0.0.3"), 700),
        "greeted": 4990,
        "refused": {421: 8},
        "failed": {"timeout": 2},
        "failure_examples": {"timeout": "no greeting in 10 s"},
        "dropped": 1,
        "open_seconds": 2.5,
        "memory_before": before,
        "memory_held": held,
    }
    fields.update(changes)
    return IdleReport(**fields)  # type: ignore[arg-type]


def test_report_as_text() -> None:
    text = _report().to_text()
    assert "5000 asked: greeted 4990, refused 8, failed 2" in text
    assert "421: 8" in text and "timeout: 2" in text and "no greeting in 10 s" in text
    assert "2.50 s (2000/s, 100 connects at a time)" in text
    assert "closed by the server meanwhile: 1" in text
    assert "VmRSS of pid 700, the process and 1 child" in text
    assert "127.0.0.1:2525 from 127.0.0.2, 127.0.0.3" in text
    assert "100.0 MiB" in text and "200.0 MiB (+100.0 MiB, 20.5 KiB per greeted connection)" in text
    bare = _report(memory_before=None, memory_held=None, refused={}, failed={}).to_text()
    assert "memory" not in bare and "refused by code" not in bare


def test_report_as_json() -> None:
    data = json.loads(json.dumps(_report().to_json()))
    assert data["greeted"] == 4990 and data["refused"] == {"421": 8}
    assert data["failed"] == {"timeout": 2} and data["dropped_during_hold"] == 1
    assert data["open_rate"] == 2000.0
    assert data["memory_before"]["rss_kib"] == 100 * 1024
    assert data["memory_held"]["scope"] == "the process and 1 child"
    assert data["per_connection_kib"] == pytest.approx(100 * 1024 / 4990)


@dataclass
class GreetingServer:
    """Greets `accept` sessions with 220, then 421s; closes session `drop` after greeting it."""

    accept: int
    drop: int
    sessions: int = 0
    open_now: int = 0
    most_open: int = 0
    closed_by_client: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n, self.sessions = self.sessions, self.sessions + 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        writer.write(b"220-gw.test ESMTP\r\n220 ready\r\n" if n < self.accept else b"421 busy\r\n")
        try:
            await writer.drain()
            held = n < self.accept and n != self.drop
            if held and not await reader.read(1):
                self.closed_by_client += 1
        finally:
            self.open_now -= 1
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


@pytest.fixture
async def greeter() -> AsyncIterator[tuple[GreetingServer, int]]:
    peer = GreetingServer(accept=25, drop=3)
    server = await asyncio.start_server(peer.serve, "127.0.0.1", 0)
    yield peer, server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_counts_against_a_server(greeter: tuple[GreetingServer, int]) -> None:
    peer, port = greeter
    samples: list[int] = []

    def memory(pid: int) -> MemorySample:
        samples.append(peer.open_now)
        return MemorySample(pid, {pid: 1000 + 10 * peer.open_now})

    options = IdleOptions(
        "127.0.0.1", port, 30, ("127.0.0.2", "127.0.0.3"), pid=1, hold=0.3, concurrency=4
    )
    report = await hold_idle(options, memory)
    assert (report.greeted, report.refused, report.failed) == (25, {421: 5}, {})
    assert report.dropped == 1
    assert samples == [0, 24]  # before the first connect; with every greeted one held but one
    assert report.memory_held is not None and report.memory_held.rss_kib == 1240
    assert peer.most_open >= 24
    for _ in range(100):  # the server notices the closes on its own loop turns
        if peer.closed_by_client == 24:
            break
        await asyncio.sleep(0.01)
    assert peer.closed_by_client == 24


async def test_a_refused_connect_is_a_failure() -> None:
    with bound_not_listening() as port:
        report = await hold_idle(IdleOptions("127.0.0.1", port, 3, hold=0.1))
    assert (report.greeted, report.failed) == (0, {"connect": 3})
    assert "connect" in report.failure_examples


@contextlib.contextmanager
def bound_not_listening() -> Iterator[int]:
    """A port bound and not listening: connects to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])
