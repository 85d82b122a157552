"""`loadtest hostile`: its options and bounds, the folded header, the probe windows and
percentiles, the peak sampler, the findings and the report; the clients against a small
loopback server (the sink of loadtest.sink, or one that greets, closes or stays silent).

Nothing here starts a gateway or measures time: the scenarios themselves run in
BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from loadtest import hostile
from loadtest.__main__ import main, parser
from loadtest.commands import hostile_options
from loadtest.errors import TargetError, UsageError
from loadtest.hostile import (
    BigResult,
    HeaderResult,
    HostileOptions,
    HostileResult,
    IdleResult,
    Replies,
    ServerSend,
    findings,
    max_header_for,
    node_setting,
    parse_bytes,
    render_json,
    render_text,
    settings,
    slowest_probes,
    split_probes,
)
from loadtest.hostile_clients import (
    FOLD_FIRST,
    Probe,
    Prober,
    Sent,
    big_head,
    filler,
    folded_header,
    folded_message,
    probe_banner,
    summary,
    transact,
)
from loadtest.idle import IdleOptions, IdleReport
from loadtest.memory import MemorySample
from loadtest.peak import PeakSampler, RssTrace, read_tree
from loadtest.report import Latency
from loadtest.sink import SinkServer
from loadtest.smtp import Session

MIB = 1024 * 1024

# -- options --------------------------------------------------------------------------------


def test_defaults_are_the_issue_s_figures() -> None:
    options = hostile_options(parser().parse_args(["hostile"]))
    assert options.only == ("big", "header", "idle")
    assert (options.senders, options.size) == (200, 25 * MIB - 64 * 1024)
    assert (options.sample_interval, options.probe_interval) == (0.05, 0.02)
    assert options.header_size == 2 * MIB
    assert options.header_source == "127.0.0.9"
    assert options.strangers == 3000
    assert options.stranger_sources == tuple(f"127.0.1.{i}" for i in range(1, 31))
    assert options.server == "127.0.0.2"
    assert options.ugem_overrides == {}
    # 200 senders, 50 an address: four connected addresses, and the server beside them
    assert options.big_sources == ("127.0.2.1", "127.0.2.2", "127.0.2.3", "127.0.2.4")
    assert options.connected == ("127.0.0.2", *options.big_sources)


def test_options_from_the_command_line() -> None:
    args = parser().parse_args(
        ["hostile", "--only", "idle", "--only", "big", "--senders", "51", "--size", "1M",
         "--sample-interval", "20ms", "--header-size", "512K", "--probe-interval", "10ms",
         "--strangers", "600", "--stranger-source", "127.0.1.1-127.0.1.3", "--server",
         "127.0.0.3", "--hold", "2s", "--timeout", "1m", "--workers", "2",
         "--ugem-set", "smtp.data_memory=67108864", "--keep", "--json"]
    )  # fmt: skip
    options = hostile_options(args)
    assert options.only == ("big", "idle")  # in the run's order, whatever the asking order
    assert (options.senders, options.size, options.header_size) == (51, MIB, 512 * 1024)
    assert (options.sample_interval, options.probe_interval) == (0.02, 0.01)
    assert options.stranger_sources == ("127.0.1.1", "127.0.1.2", "127.0.1.3")
    assert (options.server, options.hold, options.timeout, options.workers) == (
        "127.0.0.3", 2.0, 60.0, 2,
    )  # fmt: skip
    assert options.big_sources == ("127.0.2.1", "127.0.2.2")
    assert options.ugem_overrides == {"smtp": {"data_memory": "67108864"}}
    assert args.json and options.keep


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--senders", "1001"], "--senders must be 1..1000"),
        (["--size", "65M"], "--size must be"),
        (["--size", "100"], "--size must be"),
        (["--sample-interval", "5ms"], "--sample-interval must be"),
        (["--header-size", "17M"], "--header-size must be"),
        (["--probe-interval", "2s"], "--probe-interval must be"),
        (["--strangers", "20001"], "--strangers must be"),
        (["--hold", "10m"], "--hold must be"),
        (["--timeout", "2h"], "--timeout must be"),
        (["--stranger-source", "10.0.0.1"], "not a loopback address"),
        (["--server", "192.168.0.1"], "not a loopback address"),
        (["--server", "127.0.1.5"], "connected servers: no stranger may use them"),
    ],
)
def test_unbounded_or_off_machine_runs_are_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hostile", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_bad_size_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["hostile", "--size", "12G"])
    assert exited.value.code == 2
    assert "bad size '12G'" in capsys.readouterr().err


def test_check_refuses_unknown_scenarios() -> None:
    with pytest.raises(UsageError, match="scenarios are big, header, idle"):
        HostileOptions(only=("memory",)).check()
    with pytest.raises(UsageError, match="scenarios are"):
        HostileOptions(only=()).check()


@pytest.mark.parametrize(
    ("text", "size"),
    [("1048576", MIB), ("2M", 2 * MIB), ("2MiB", 2 * MIB), ("512k", 512 * 1024), ("7", 7)],
)
def test_parse_bytes(text: str, size: int) -> None:
    assert parse_bytes(text) == size


@pytest.mark.parametrize("text", ["", "M", "-1", "1.5M", "2G", "lots"])
def test_parse_bytes_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="bad size"):
        parse_bytes(text)


def test_node_settings_per_scenario() -> None:
    options = HostileOptions(header_size=6 * MIB, ugem_overrides={"auth": {"timeout": "2.0"}})
    header = settings(options, "header", ("127.0.0.1", 2526))
    routes = header["delivery"]["routes"]
    assert '"example.org" = "127.0.0.1:2526"' in routes
    assert '"mdai.gov.kz" = "127.0.0.1:2526"' in routes
    assert header["delivery"]["dns_servers"].startswith('["127.0.0.1:')
    assert header["smtp"] == {"max_header_size": str(6 * MIB + 64 * 1024)}
    assert header["auth"] == {"timeout": "2.0"}  # the caller's override last
    assert "smtp" not in settings(options, "idle", ("127.0.0.1", 2526))  # the node's caps
    assert max_header_for(2 * MIB) == 4 * MIB


def test_node_setting_reads_an_override_or_keeps_the_default() -> None:
    overrides = {"smtp": {"data_memory": "67108864", "max_header_size": '"big"'}}
    assert node_setting(overrides, "smtp", "data_memory", 1) == 64 * MIB
    assert node_setting(overrides, "smtp", "max_header_size", 5) == 5  # not a number
    assert node_setting(overrides, "smtp", "absent", 9) == 9
    assert node_setting({"smtp": {"x": "1 2"}}, "smtp", "x", 3) == 3  # not TOML


# -- messages -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [2 * MIB, 1000, 100_003, 1])
def test_folded_header_is_one_field_of_about_the_size(size: int) -> None:
    field = folded_header(size)
    lines = field.split(b"\r\n")
    assert lines[-1] == b""  # CRLF-terminated
    lines = lines[:-1]
    assert field.startswith(FOLD_FIRST)
    assert lines[0] == b"X-Folded: a"
    assert len(lines) >= 2
    assert all(line.startswith((b" ", b"\t")) and b":" not in line for line in lines[1:])
    if size > len(FOLD_FIRST) + 5:
        assert size - 5 < len(field) <= size


def test_the_default_folded_header_has_about_half_a_million_lines() -> None:
    field = folded_header(2 * MIB)
    assert field.count(b"\r\n") == 419_428  # the first line and 419,427 continuations


def test_folded_message_carries_the_field_in_its_header_section() -> None:
    text = folded_message(64 * 1024, "someone@example.org", "clerk@mdai.gov.kz", "r-1")
    head, sep, body = text.partition(b"\r\n\r\n")
    assert sep
    assert head.startswith(b"From: <someone@example.org>\r\nTo: <clerk@mdai.gov.kz>\r\n")
    assert b"X-Loadtest-Id: r-1\r\n" in head
    assert folded_header(64 * 1024) in head + b"\r\n"
    assert body == b"One field of this header is folded.\r\n"
    assert b"\r\n." not in text


def test_large_message_heads_share_one_length_and_the_body_is_shared() -> None:
    date = "Mon, 07 Dec 2026 00:00:00 -0000"
    heads = [big_head(n, "big-x", "big@mdai.gov.kz", f"user{n}@example.org", date) for n in (0, 7)]
    assert len({len(h) for h in heads}) == 1
    assert b"X-Loadtest-Id: big-x-000007\r\n\r\n" in heads[1]
    assert filler(10_000) is filler(10_000)  # cached: one copy for every sender
    assert abs(len(filler(25 * MIB)) - 25 * MIB) <= 1
    assert not filler(10_000).startswith(b".") and b"\r\n." not in filler(10_000)


# -- percentiles and probe windows ----------------------------------------------------------


def test_summary_is_nearest_rank_in_milliseconds() -> None:
    lat = summary([n / 1000 for n in range(100, 0, -1)])  # 1..100 ms, unsorted
    assert (lat.count, lat.p50, lat.p90, lat.p99, lat.max) == (100, 50.0, 90.0, 99.0, 100.0)
    one = summary([0.25])
    assert (one.p50, one.p99, one.max) == (250.0, 250.0, 250.0)
    assert summary([]).count == 0 and summary([]).p99 is None


def test_probes_split_into_before_during_and_after() -> None:
    probes = [
        Probe(9.0, 0.001, 220),
        Probe(10.0, 0.002, 220),  # the message's connect: during
        Probe(10.5, 0.400, 220),
        Probe(10.6, 10.0, None, "timeout"),  # failures are counted apart
        Probe(11.0, 0.003, 421),  # its reply: still during; any code is a banner
        Probe(11.1, 0.004, 220),
    ]
    (first_at, first_s), (second_at, second_s) = slowest_probes(probes, 10.0, 2)
    assert (first_at, first_s, second_s) == (0.5, 0.4, 0.004)
    assert abs(second_at - 1.1) < 1e-9
    before, during, after = split_probes(probes, 10.0, 11.0)
    assert (before.count, during.count, after.count) == (1, 3, 1)
    assert during.max == 400.0 and during.p50 == 3.0
    assert after.p99 == 4.0


# -- the peak sampler -----------------------------------------------------------------------


def _proc(root: Path, pid: int, ppid: int, rss: int) -> None:
    d = root / str(pid)
    d.mkdir(parents=True)
    (d / "stat").write_text(f"{pid} (ugem) S {ppid} {pid} {pid} 0 -1 4194560 100 0\n")
    (d / "status").write_text(f"Name:\tugem\nVmRSS:\t   {rss} kB\n")


def test_read_tree_sums_the_pids_that_are_still_there(tmp_path: Path) -> None:
    _proc(tmp_path, 100, 1, 50_000)
    _proc(tmp_path, 101, 100, 20_000)
    tree = read_tree(100, [101, 102], tmp_path)  # 102 has gone
    assert tree is not None and tree.processes == {100: 50_000, 101: 20_000}
    assert read_tree(999, [], tmp_path) is None


def test_the_sampler_keeps_the_first_the_peak_and_when_and_the_last(tmp_path: Path) -> None:
    sampler = PeakSampler(100, 0.05, tmp_path)
    for at, rss in ((0.0, 100), (0.05, 400), (0.10, 300), (0.15, 400), (0.2, 200)):
        sampler.record(MemorySample(100, {100: rss}), at)
    trace = sampler.trace()
    assert (trace.first.rss_kib, trace.peak.rss_kib, trace.last.rss_kib) == (100, 400, 200)
    assert trace.peak_at == 0.05  # the first time it was reached
    assert (trace.samples, trace.growth_kib, trace.lost) == (5, 300, False)
    assert trace.timeline == (400,)  # all within the first second


def test_the_timeline_keeps_each_second_s_peak() -> None:
    sampler = PeakSampler(100, 0.5)
    for at, rss in ((0.0, 100), (0.5, 300), (1.0, 200), (3.2, 700), (5.9, 50)):
        sampler.record(MemorySample(100, {100: rss}), at)
    trace = sampler.trace()
    assert trace.timeline == (300, 200, 0, 700, 0, 50)  # 0: no sample that second
    assert trace.steps(2.0) == [300, 700, 50]
    assert trace.steps(5.0) == [700, 50]


def test_the_sampler_runs_and_stops_and_says_when_the_process_went(tmp_path: Path) -> None:
    _proc(tmp_path, 100, 1, 50_000)
    _proc(tmp_path, 101, 100, 20_000)
    sampler = PeakSampler(100, 0.01, tmp_path)
    sampler.start()
    trace = sampler.stop()
    assert trace.first.processes == {100: 50_000, 101: 20_000}
    assert trace.samples >= 2 and not trace.lost
    gone = PeakSampler(100, 0.01, tmp_path)
    gone.start()
    (tmp_path / "100" / "status").unlink()
    assert gone.stop().lost
    with pytest.raises(TargetError, match="no VmRSS for process 7"):
        PeakSampler(7, 0.01, tmp_path).start()


# -- findings and the report ----------------------------------------------------------------


def _trace(first: int, peak: int) -> RssTrace:
    sample = MemorySample(4242, {4242: first})
    timeline = (first, peak, first, first, first, first, first)
    return RssTrace(
        0.05, 300, sample, MemorySample(4242, {4242: peak}), 7.5, sample, False, timeline
    )


def _latency(*ms: float) -> Latency:
    return Latency.of([m / 1000 for m in ms])


def _result(peak_kib: int, banner_ms: float, server_code: int, failed: int = 0) -> HostileResult:
    options = HostileOptions()
    ends: list[Sent | tuple[str, str]] = [
        Sent(250, "2.0.0 Ok"), Sent(452, "4.3.1 Insufficient system resources"),
        Sent(452, "4.3.1 again"), *[("timeout", "no reply")] * failed,
    ]  # fmt: skip
    big = BigResult(
        200, options.size, options.big_sources, 512 * MIB, Replies.of(ends),
        42.0, _latency(100, 200), _trace(80 * 1024, peak_kib), 61, 0.03,
    )  # fmt: skip
    header = HeaderResult(
        2 * MIB, 419_428, 2 * MIB + 300, 4 * MIB, "127.0.0.9", Sent(250, "2.0.0 Ok", 0.3), "",
        0.31, _latency(1, 2), _latency(2, banner_ms), _latency(1, 3), {220: 100}, {}, 0, 0.02,
        0.01, ((0.12, banner_ms / 1000), (0.9, 0.003)),
    )  # fmt: skip
    strangers = IdleReport(
        IdleOptions("127.0.0.1", 2525, 3000, options.stranger_sources, 4242, 5.0),
        600, {421: 2400}, {}, {}, 0, 1.5,
        MemorySample(4242, {4242: 70_000}), MemorySample(4242, {4242: 80_000}),
    )  # fmt: skip
    server = ServerSend(
        "127.0.0.2", Sent(server_code, "2.0.0 Ok" if server_code == 250 else "4.7.0 Too many"),
        "", 0.002, 0.01,
    )  # fmt: skip
    return HostileResult(options, 1_800_000_000.0, big, header, IdleResult(strangers, server, 0.05))


def test_a_node_that_meets_every_target_has_no_findings() -> None:
    result = _result(peak_kib=900 * 1024, banner_ms=40, server_code=250)
    assert findings(result) == []
    text = render_text(result)
    assert "findings: none" in text
    assert "250: 1, 452: 2" in text
    assert "452 4.3.1 Insufficient system resources" in text  # the first text of each code
    assert "failed                none" in text
    assert "+820.0 MiB, 1.60 x data_memory 512.0 MiB" in text
    assert "peak every 5 s      900, 80 MiB" in text
    assert "61 by the end" in text
    assert "p50 2.0 ms  p99 40.0 ms  max 40.0 ms  (2 probes)" in text
    assert "40.0 ms at +0.12 s, 3.0 ms at +0.90 s (from the folded message's connect)" in text
    assert "admitted (220)      600" in text and "421: 2400" in text
    assert "127.0.0.2: 250 2.0.0 Ok" in text


def test_findings_say_plainly_what_the_node_missed() -> None:
    result = _result(peak_kib=2000 * 1024, banner_ms=150, server_code=421, failed=2)
    found = findings(result)
    assert len(found) == 4
    assert found[0].startswith("big: the node's RSS rose 1920.0 MiB above its first sample")
    assert "more than 3 x data_memory (512.0 MiB)" in found[0]
    assert found[1] == "big: 2 senders got no reply (timeout: 2; first: timeout: no reply)"
    assert found[2].startswith("header: banner p99 150.0 ms (max 150.0 ms)")
    assert found[3] == "idle: the connected server 127.0.0.2 did not get 250 (421 4.7.0 Too many)"
    assert "findings\n  - big:" in render_text(result)


def test_json_report_is_plain_data() -> None:
    result = _result(peak_kib=900 * 1024, banner_ms=40, server_code=250)
    data = json.loads(json.dumps(render_json(result)))
    assert data["options"]["senders"] == 200
    assert data["big"]["replies"]["by_code"] == {"250": 1, "452": 2}
    assert data["big"]["rss"]["peak"]["rss_kib"] == 900 * 1024
    assert data["big"]["rss"]["growth_kib"] == 820 * 1024
    assert data["big"]["rss"]["timeline_kib"][1] == 900 * 1024
    assert data["big"]["arrived_at_next_hop"] == 61
    assert data["header"]["banner_ms"]["during"]["p99"] == 40.0
    assert data["header"]["reply_code"] == 250
    assert data["header"]["slowest_probes"][0] == {"at_s": 0.12, "ms": 40.0}
    assert data["idle"]["strangers"]["greeted"] == 600
    assert data["idle"]["connected_server"]["reply_code"] == 250
    assert data["findings"] == []
    partial = render_json(HostileResult(HostileOptions(only=("idle",)), 0.0))
    assert partial["big"] is None and partial["findings"] == []


# -- the clients against small servers ------------------------------------------------------


@pytest.fixture
async def sink() -> AsyncIterator[SinkServer]:
    server = await SinkServer.start(keep=True)
    yield server
    await server.stop()


async def test_transact_streams_the_parts_in_chunks(sink: SinkServer) -> None:
    session = await Session.open("127.0.0.1", sink.port, None, "test.invalid", pipelining=False)
    head = big_head(3, "r", "big@mdai.gov.kz", "user3@example.org", "today")
    body = filler(100_000)
    sent = await transact(session, "big@mdai.gov.kz", "user3@example.org", (head, body), 4096)
    await session.quit()
    assert sent.code == 250 and sent.data_seconds is not None
    assert sink.arrivals.kept == [head + body]


class _Scripted:
    """A loopback server: `answer(writer)` on connect, then one reply per line it reads."""

    def __init__(self, answer: Callable[[asyncio.StreamWriter], None], reply: bytes) -> None:
        self.answer = answer
        self.reply = reply
        self.handlers: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        self.answer(writer)
        with contextlib.suppress(OSError):
            while not writer.is_closing() and (line := await reader.readline()):
                writer.write(self.reply if line.startswith(b"RCPT") else b"250 ok\r\n")
        writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        await asyncio.gather(*self.handlers, return_exceptions=True)


async def test_transact_stops_at_a_refused_recipient() -> None:
    server = _Scripted(lambda w: w.write(b"220 hi\r\n"), b"550 5.1.1 no such user\r\n")
    port = await server.start()
    try:
        session = await Session.open("127.0.0.1", port, None, "test.invalid", pipelining=False)
        sent = await transact(session, "a@mdai.gov.kz", "nobody@example.org", (b"x\r\n",))
        await session.quit()
    finally:
        await server.stop()
    assert sent == Sent(550, "5.1.1 no such user")


async def test_probe_times_the_banner_or_names_the_failure() -> None:
    greeter = _Scripted(lambda w: w.write(b"220 hello\r\n"), b"")
    closer = _Scripted(lambda w: w.close(), b"")
    silent = _Scripted(lambda w: None, b"")
    try:
        ports = [await s.start() for s in (greeter, closer, silent)]
        ok, closed, mute = [await probe_banner("127.0.0.1", p, None, 0.2) for p in ports]
        assert (ok.code, ok.failure) == (220, "") and ok.seconds < 0.2
        assert (closed.code, closed.failure) == (None, "closed")
        assert (mute.code, mute.failure) == (None, "timeout")
        prober = Prober("127.0.0.1", ports[0], ["127.0.0.1"], 0.01)
        prober.start()
        await asyncio.sleep(0.05)
        probes = await prober.stop()
        assert probes and all(p.code == 220 for p in probes)
        assert probes == sorted(probes, key=lambda p: p.started)
    finally:
        for server in (greeter, closer, silent):
            await server.stop()


def test_the_command_is_registered() -> None:
    assert hostile.SCENARIOS == ("big", "header", "idle")
    args = parser().parse_args(["hostile", "--only", "header"])
    assert args.handler.__name__ == "hostile_command"
