"""`loadtest nodes`: its options and their errors, the load split over two nodes, each
setup's gateway config, RESP, the CPU time read from /proc, the medians and ratios over
rounds and the report. The small run against real processes is
tests/integration/test_loadtest_nodes_delivers_every_message_once.py.

The measurement itself (minutes of load) is not run here; see BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from loadtest import nodes
from loadtest.__main__ import main, parser
from loadtest.commands import nodes_options
from loadtest.content import SizeDist
from loadtest.errors import TargetError
from loadtest.gateway import GatewayInstance
from loadtest.nodes import (
    SETUP_NAMES,
    SETUPS,
    NodesOptions,
    NodesResult,
    Run,
    group_cpu,
    redis_call,
    render_json,
    render_text,
    resp_command,
    resp_reply,
    setup_overrides,
    share,
    split_load,
    stat_cpu,
)
from loadtest.ports import free_port
from loadtest.report import Latency, Report, Tally
from loadtest.rounds import Spread
from ugem.core.config import load_config

# A /proc/PID/stat line whose name holds spaces and parentheses: pid 4242, group 4240,
# utime 150, stime 30, cutime 7, cstime 3 (fields 14-17).
STAT = (
    "4242 (ugem serve (w1)) S 4240 4240 4240 0 -1 4194560 5120 0 0 0 150 30 7 3 20 0 3 0 "
    "987654 123456789 4321 18446744073709551615 1 1 0 0 0 0 0 16781312 16386 0 0 0 17 1 0 0"
)


# -- options ------------------------------------------------------------------------------


def test_options_from_the_command_line(tmp_path: Path) -> None:
    args = parser().parse_args(
        ["nodes", "--messages", "301", "--connections", "9", "--per-connection", "20",
         "--size", "4096", "--source", "127.0.0.7-127.0.0.8", "--rounds", "5",
         "--redis-server", "/opt/redis/bin/redis-server", "--settle", "0", "--stall", "12s",
         "--ugem-set", "smtp.max_connections_per_ip=500", "--workdir", str(tmp_path), "--keep",
         "--json"]
    )  # fmt: skip
    options = nodes_options(args)
    assert (options.messages, options.connections, options.per_connection) == (301, 9, 20)
    assert options.size == SizeDist("fixed", 4096)
    assert options.sources == ("127.0.0.7", "127.0.0.8")
    assert (options.rounds, options.redis_server) == (5, "/opt/redis/bin/redis-server")
    assert (options.settle, options.stall, options.workdir, options.keep) == (
        0.0, 12.0, tmp_path, True,
    )  # fmt: skip
    assert options.ugem_overrides == {"smtp": {"max_connections_per_ip": "500"}}
    assert args.json and args.handler.__name__ == "nodes_command"


def test_defaults_are_the_comparison_s_load() -> None:
    options = nodes_options(parser().parse_args(["nodes"]))
    assert options == NodesOptions(ugem_overrides={})
    assert (options.messages, options.connections, options.rounds) == (10_000, 50, 3)
    assert options.sources == ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
    assert (options.redis_server, options.settle, options.stall) == ("redis-server", 10.0, 30.0)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--rounds", "21"], "--rounds 21: from 1 to 20"),
        (["--connections", "1"], "--connections must each be at least 2"),
        (["--messages", "1"], "--connections must each be at least 2"),
        (["--ugem-set", "nodot=1"], "bad gateway setting 'nodot=1'"),
    ],
)
def test_a_run_that_cannot_be_made_is_a_usage_error(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["nodes", *argv]) == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv", [["--rounds", "0"], ["--settle", "-1s"], ["--settle", "soon"], ["--messages", "x"]]
)
def test_bad_values_are_refused_by_the_parser(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["nodes", *argv])
    assert exit_.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_a_missing_redis_server_is_named(tmp_path: Path) -> None:
    options = NodesOptions(redis_server=str(tmp_path / "no-redis-server"), workdir=tmp_path)
    with pytest.raises(TargetError, match=r"no redis-server at .*--redis-server PATH"):
        asyncio.run(nodes.nodes(options))


# -- the load and the nodes' settings -----------------------------------------------------


def test_share_splits_as_evenly_as_whole_numbers_go() -> None:
    assert [share(61, 2, i) for i in range(2)] == [31, 30]
    assert [share(10, 4, i) for i in range(4)] == [3, 3, 2, 2]
    assert sum(share(6000, 2, i) for i in range(2)) == 6000


def test_two_nodes_each_get_half_the_messages_and_connections() -> None:
    options = NodesOptions(messages=61, connections=5, per_connection=20)
    first, second = split_load(options, [2601, 2602], "two-redis-r1")
    assert (first.port, first.messages, first.connections) == (2601, 31, 3)
    assert (second.port, second.messages, second.connections) == (2602, 30, 2)
    assert first.per_connection == second.per_connection == 20
    assert first.sources == second.sources == options.sources
    assert first.run_id.startswith("two-redis-r1-n1-") and second.run_id.startswith(
        "two-redis-r1-n2-"
    )  # the sink tells their ids apart
    (alone,) = split_load(options, [2601], "one-redis-r1")
    assert (alone.messages, alone.connections) == (61, 5)


@pytest.mark.parametrize(
    ("name", "store", "shares"),
    [
        ("one-sqlite", "sqlite", False),
        ("one-redis-noshare", "redis", False),
        ("one-redis", "redis", True),
        ("two-redis", "redis", True),
    ],
)
def test_each_setup_s_config_is_what_the_gateway_loads(
    tmp_path: Path, name: str, store: str, shares: bool
) -> None:
    setup = next(s for s in SETUPS if s.name == name)
    url = "redis://127.0.0.1:16379/0"
    for index in range(setup.nodes):
        overrides = setup_overrides(setup, index, url, {"smtp": {"max_connections": "300"}})
        gateway = GatewayInstance(
            tmp_path / f"n{index}", 2525 + index, 8025 + index, "example.org",
            ("127.0.0.1", 2526), ("127.0.0.2",), "mdai.gov.kz", overrides=overrides,
        )  # fmt: skip
        gateway.write()
        config = load_config(gateway.config_path, {})
        assert config.store_url.startswith(f"{store}://")
        assert config.shares_traffic is shares
        assert config.anomaly.mode == "shadow"  # the node's default in every setup
        assert config.node.hostname == f"gw{index + 1}.loadtest.invalid"
        assert config.smtp.max_connections == 300  # the caller's setting
        assert config.node.data_dir == str(tmp_path / f"n{index}" / "var")


def test_the_setups_in_their_order() -> None:
    assert SETUP_NAMES == ("one-sqlite", "one-redis-noshare", "one-redis", "two-redis")
    assert [s.nodes for s in SETUPS] == [1, 1, 1, 2]


# -- redis-server -------------------------------------------------------------------------


def test_resp_command_is_an_array_of_bulk_strings() -> None:
    assert resp_command("FLUSHALL") == b"*1\r\n$8\r\nFLUSHALL\r\n"
    assert resp_command("SET", "k", "é") == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\xc3\xa9\r\n"


def test_resp_reply_of_one_line() -> None:
    assert resp_reply(b"+OK\r\n") == "OK"
    assert resp_reply(b"+PONG\r\n") == "PONG"
    assert resp_reply(b":12\r\n") == "12"
    with pytest.raises(TargetError, match="'-ERR unknown command'"):
        resp_reply(b"-ERR unknown command\r\n")
    with pytest.raises(TargetError, match="'nothing'"):
        resp_reply(b"")


async def test_a_redis_call_nobody_answers_names_the_port() -> None:
    port = free_port()
    with pytest.raises(TargetError, match=f"127.0.0.1:{port}, FLUSHALL"):
        await redis_call(port, "FLUSHALL")


async def test_a_redis_call_sends_resp_and_reads_the_reply() -> None:
    heard: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heard.append(await reader.readexactly(len(resp_command("FLUSHALL"))))
        writer.write(b"+OK\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        assert await redis_call(server.sockets[0].getsockname()[1], "FLUSHALL") == "OK"
    finally:
        server.close()
        await server.wait_closed()
    assert heard == [b"*1\r\n$8\r\nFLUSHALL\r\n"]


# -- CPU time -----------------------------------------------------------------------------


def test_stat_cpu_reads_the_group_and_the_four_times() -> None:
    assert stat_cpu(STAT) == (4240, 150 + 30 + 7 + 3)


def test_group_cpu_sums_each_group_s_processes(tmp_path: Path) -> None:
    def process(pid: int, group: int, utime: int, stime: int) -> None:
        (tmp_path / str(pid)).mkdir()
        fields = STAT.split(") ", 1)[1].split()
        fields[2], fields[11], fields[12], fields[13], fields[14] = (
            str(group), str(utime), str(stime), "0", "0",
        )  # fmt: skip
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (p) {' '.join(fields)}\n")

    process(100, 100, 200, 100)  # a supervisor and its worker: one group
    process(101, 100, 50, 50)
    process(300, 300, 10, 0)  # another group
    process(400, 1, 99, 99)  # not asked for
    (tmp_path / "self").mkdir()  # not a pid
    (tmp_path / "500").mkdir()  # exited while /proc was read: no stat
    hz = os.sysconf("SC_CLK_TCK")
    assert group_cpu([100, 300, 999], tmp_path) == {100: 400 / hz, 300: 10 / hz, 999: 0.0}


def test_group_cpu_of_this_process_grows_with_work() -> None:
    group = os.getpgrp()
    before = group_cpu([group])[group]
    after = before
    for _ in range(500):  # about a second of CPU at most; a tick is 10 ms
        sum(range(100_000))
        after = group_cpu([group])[group]
        if after > before:
            break
    assert after > before


# -- rounds: medians, ratios, the report --------------------------------------------------


def _run(setup: str, round_no: int, rate: float, cpu: dict[str, float], n: int = 1000) -> Run:
    """A run of `setup` in which `n` messages were accepted over n / rate seconds and
    arrived at that rate too; `cpu` in seconds."""
    tally = Tally()
    for i in range(n):
        tally.accept(f"{setup}-{i}", 2048, 0.001 * (1 + i % 10))
    elapsed = n / rate
    report = Report.of(
        tally, elapsed, target="t", run_id="r", connections=50, per_connection=100,
        size="2048 bytes", rate="as fast as possible", started_at=1000.0,
        finished_at=1000.0 + elapsed,
    )  # fmt: skip
    sink = {"messages": n, "unique_ids": n, "lost": 0, "duplicates": 0,
            "last_arrival": 1000.0 + elapsed}  # fmt: skip
    return Run(setup, round_no, (report,), report.latency, sink, cpu, 0.1)


def _result() -> NodesResult:
    rates = {"one-sqlite": 800.0, "one-redis-noshare": 700.0, "one-redis": 500.0}
    runs = []
    for r, (extra_gw, extra_redis, two) in enumerate([(0.04, 0.01, 1.2), (0.06, 0.02, 1.5)], 1):
        for name, rate in rates.items():
            on = name == "one-redis"
            redis = 0.1 + (extra_redis if on else 0.0) if "redis" in name else 0.0
            cpu = {"gateway": 1.0 + (extra_gw if on else 0.0), "redis": redis}
            runs.append(_run(name, r, rate, cpu))
        runs.append(_run("two-redis", r, 500.0 * two, {"gateway": 2.2, "redis": 0.3}))
    return NodesResult(NodesOptions(messages=1000, rounds=2), "Redis server v=7.0.15", tuple(runs))


def test_spread_is_the_median_and_the_extremes() -> None:
    spread = Spread.of([3.0, None, 1.0, 2.0])
    assert spread == Spread(2.0, 1.0, 3.0, 3)
    assert Spread.of([4.0, 1.0]) == Spread(2.5, 1.0, 4.0, 2)
    assert Spread.of([None]) is None
    assert Spread(2.0, 1.0, 3.0, 3).text("{:.1f}") == "2.0 [1.0..3.0]"
    assert Spread(2.0, 2.0, 2.0, 1).text("{:.1f}") == "2.0"
    assert Spread(2.0, 2.0, 2.0, 3).text("{:.1f}") == "2.0"  # every round the same


def test_a_run_s_rates_cpu_and_completeness() -> None:
    run = _run("one-redis", 1, 500.0, {"gateway": 1.5, "redis": 0.25})
    assert run.accept_rate == pytest.approx(500.0)
    assert run.end_to_end_rate == pytest.approx(500.0)
    assert run.cpu_us_per_message() == pytest.approx(1750.0)
    assert run.cpu_s_per_1000("gateway") == pytest.approx(1.5)
    assert run.cpu_s_per_1000("redis") == pytest.approx(0.25)
    assert run.complete()
    lossy = Run(run.setup, 1, run.reports, run.latency, {**run.sink, "lost": 1}, run.cpu)
    assert not lossy.complete()


def test_two_generators_span_the_first_start_to_the_last_finish() -> None:
    first = _run("two-redis", 1, 500.0, {}, n=500).reports[0]  # 1000.0 to 1001.0
    second = replace(first, started_at=1000.5, finished_at=1001.5)
    sink = {"messages": 1000, "last_arrival": 1002.0}
    run = Run("two-redis", 1, (first, second), Latency.of([]), sink, {"gateway": 1.0})
    assert (run.sent, run.accepted) == (1000, 1000)
    assert run.accept_rate == pytest.approx(1000 / 1.5)  # 1000.0 to 1001.5
    assert run.end_to_end_rate == pytest.approx(1000 / 2.0)  # 1000.0 to the last arrival


def _three(spread: Spread | None) -> tuple[float, float, float, int]:
    assert spread is not None
    return spread.median, spread.low, spread.high, spread.count


def test_shared_log_cost_and_two_against_one_round_by_round() -> None:
    result = _result()
    # round 1: +0.04 s gateway and +0.01 s redis over 1000 messages; round 2: +0.06, +0.02
    assert _three(result.shared_log_cost()) == pytest.approx((65.0, 50.0, 80.0, 2))
    assert _three(result.shared_log_cost("gateway")) == pytest.approx((50.0, 40.0, 60.0, 2))
    assert _three(result.shared_log_cost("redis")) == pytest.approx((15.0, 10.0, 20.0, 2))
    e2e = result.two_vs_one(lambda r: r.end_to_end_rate)
    assert _three(e2e) == pytest.approx((1.35, 1.2, 1.5, 2))
    sqlite = result.figure("one-sqlite", nodes.FIGURES[1])
    assert _three(sqlite) == pytest.approx((800.0, 800.0, 800.0, 2))
    assert result.complete()


def test_a_round_without_both_setups_is_left_out() -> None:
    result = _result()
    partial = NodesResult(
        result.options, "v", tuple(r for r in result.runs if (r.setup, r.round) != ("one-redis", 2))
    )
    cost = partial.shared_log_cost()
    assert cost is not None and cost.count == 1 and cost.median == pytest.approx(50.0)


def test_report_as_text() -> None:
    text = render_text(_result())
    assert "1000 messages of 2048 bytes over 50 connections (100 per connection)" in text
    assert "2 round(s) of the setups in turn" in text
    assert "Redis server v=7.0.15; --appendonly yes --appendfsync everysec" in text
    header = next(line for line in text.splitlines() if "one-redis-noshare" in line)
    assert header.split() == list(SETUP_NAMES)
    row = next(line for line in text.splitlines() if line.startswith("end to end (msg/s)"))
    assert row.split()[4:] == ["800", "700", "500", "675", "[600..750]"]
    assert "lost/dup" in text and "0/0" in text
    assert "one-redis - one-redis-noshare): 65.0 [50.0..80.0] us (gateway 50.0 [40.0..60.0]" in text
    assert "end to end 1.35 [1.20..1.50]" in text
    assert text.rstrip().endswith("every accepted message arrived once")


def test_report_as_json() -> None:
    data = json.loads(json.dumps(render_json(_result())))
    assert data["order"] == list(SETUP_NAMES) and data["rounds"] == 2
    assert data["redis"]["persistence"] == "--appendonly yes --appendfsync everysec"
    assert data["setups"]["two-redis"]["end_to_end_rate"]["median"] == pytest.approx(675.0)
    assert data["shared_traffic_cost_us_per_message"]["total"]["median"] == pytest.approx(65.0)
    assert data["two_vs_one"]["end_to_end"]["high"] == pytest.approx(1.5)
    assert data["complete"] is True and len(data["runs"]) == 8
    assert data["runs"][0]["cpu_s_per_1000"] == {"gateway": pytest.approx(1.0), "redis": 0.0}
    assert data["load"]["messages"] == 1000


# -- against real processes ---------------------------------------------------------------
