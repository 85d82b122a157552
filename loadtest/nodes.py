"""Several nodes on one machine: one node against two on a shared Redis, and the cost of the
shared traffic log per message (issue 14).

`nodes(options)` starts a private redis-server (on a free loopback port, in its own
directory, with the append-only file fsynced every second as the README advises for
production, RDB snapshots off) and one sink process, then measures four setups with the
same load, in `rounds` alternating rounds (A B C D, A B C D, ...) so that a drift of the
machine spreads over all of them:

- `one-sqlite`: one node on its embedded SQLite store;
- `one-redis-noshare`: one node on the Redis store, `[anomaly] shared_traffic = "off"`;
- `one-redis`: the same with the shared traffic log on;
- `two-redis`: two nodes (each its own data dir, SMTP and admin ports) on that Redis, the
  log on, and no balancer: two generators at once, one per node, each with half the
  messages and half the connections.

Before each setup: FLUSHALL (a raw RESP command), the sink's counts reset, the connection
registered once (`ugem connection add` through the first node), the nodes started and
ready, and a quiet second awaited (at most `settle` s). The CPU time of each node's process
group and of redis-server (utime + stime, with that of reaped children: /proc/PID/stat) is
read before the load and once the sink has every accepted message (or nothing arrived for
`stall` s), so delivery counts too. A setup's accept rate spans the first generator's start
to the last one's finish, its end-to-end rate the first start to the sink's last arrival;
its latencies pool every generator's.

`NodesResult` gives each figure's median and min..max over rounds and two figures derived
round by round: the shared log's CPU per message (one-redis minus one-redis-noshare,
gateway + redis, in µs) and two nodes against one (two-redis / one-redis).
`render_text` and `render_json` print them. A process that does not start or answer is a
`TargetError`; the nodes, the sink and redis-server are stopped at the end, on errors and
on cancellation too; the work directory is removed unless `keep`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from loadtest import generator
from loadtest.compare import DEFAULT_SOURCES, DOMAIN, SENDER_DOMAIN, settle
from loadtest.content import SizeDist
from loadtest.errors import TargetError, UsageError
from loadtest.gateway import GatewayInstance
from loadtest.generator import RunOptions, RunResult, load_against, run_header
from loadtest.ports import free_port
from loadtest.processes import SinkProcess, stop_process
from loadtest.report import Latency, Report
from loadtest.rounds import Spread
from loadtest.spec import parse_duration

MAX_ROUNDS = 20
QUIET_CPU = 0.25  # a quiet second: at most this share of the CPUs busy
REDIS_START = 10.0  # seconds for redis-server to answer PING
REDIS_CALL = 10.0  # seconds for one command
REDIS_PERSISTENCE = ("--appendonly", "yes", "--appendfsync", "everysec")
PROC = Path("/proc")


@dataclass(frozen=True)
class Setup:
    name: str
    nodes: int
    redis: bool  # on the Redis store, else each node on its own SQLite
    shared_traffic: str | None  # [anomaly] shared_traffic; None: the node's default


SETUPS = (
    Setup("one-sqlite", 1, False, None),
    Setup("one-redis-noshare", 1, True, "off"),
    Setup("one-redis", 1, True, "on"),
    Setup("two-redis", 2, True, "on"),
)
SETUP_NAMES = tuple(s.name for s in SETUPS)


@dataclass(frozen=True)
class NodesOptions:
    messages: int = 10_000
    connections: int = 50
    per_connection: int = 100
    size: SizeDist = SizeDist("fixed", 2048)
    sources: tuple[str, ...] = DEFAULT_SOURCES
    rounds: int = 3
    redis_server: str = "redis-server"
    stall: float = 30.0
    settle: float = 10.0  # before each setup, wait at most this long for a quiet second
    timeout: float = 60.0
    ugem_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    workdir: Path | None = None
    keep: bool = False

    def check(self) -> None:
        """UsageError naming the option when the run cannot be made as asked."""
        if self.messages < 2 or self.connections < 2:
            raise UsageError(
                "two-redis splits the load over two nodes: --messages and --connections "
                "must each be at least 2"
            )
        if not 1 <= self.rounds <= MAX_ROUNDS:
            raise UsageError(f"--rounds {self.rounds}: from 1 to {MAX_ROUNDS}")
        if self.settle < 0:
            raise UsageError("--settle must not be negative")


def parse_settle(text: str) -> float:
    """`--settle`: a duration (see loadtest.spec), or 0 for no wait."""
    return 0.0 if text.strip() in ("0", "0s") else parse_duration(text)


# -- the load and the nodes' settings -------------------------------------------------------


def share(total: int, parts: int, index: int) -> int:
    """Part `index` of `total` split in `parts` as evenly as whole numbers go."""
    return total // parts + (1 if index < total % parts else 0)


def split_load(options: NodesOptions, ports: Sequence[int], name: str) -> list[RunOptions]:
    """One generator's load per node port: the messages and connections shared out."""
    n = len(ports)
    return [
        replace(
            load_against(options, port, name if n == 1 else f"{name}-n{i + 1}"),
            messages=share(options.messages, n, i),
            connections=share(options.connections, n, i),
        )
        for i, port in enumerate(ports)
    ]


def setup_overrides(
    setup: Setup, index: int, redis_url: str, extra: dict[str, dict[str, str]]
) -> dict[str, dict[str, str]]:
    """Node `index`'s config keys for `setup` (TOML values), the caller's `extra` last."""
    sections = {"node": {"hostname": json.dumps(f"gw{index + 1}.loadtest.invalid")}}
    if setup.redis:
        sections["store"] = {"url": json.dumps(redis_url)}
    if setup.shared_traffic is not None:
        sections["anomaly"] = {"shared_traffic": json.dumps(setup.shared_traffic)}
    for section, keys in extra.items():
        sections.setdefault(section, {}).update(keys)
    return sections


# -- redis-server ---------------------------------------------------------------------------


def resp_command(*words: str) -> bytes:
    """A command in RESP, the form redis-server reads: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(words)]
    for word in words:
        data = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def resp_reply(line: bytes) -> str:
    """The text of a one-line reply (+simple string or :integer); TargetError otherwise."""
    text = line.decode("utf-8", "replace").rstrip("\r\n")
    if text[:1] in ("+", ":"):
        return text[1:]
    raise TargetError(f"redis-server answered {text or 'nothing'!r}")


async def redis_call(port: int, *words: str) -> str:
    """One command to the redis-server on 127.0.0.1:`port`; its one-line reply."""
    try:
        async with asyncio.timeout(REDIS_CALL):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(resp_command(*words))
                await writer.drain()
                return resp_reply(await reader.readline())
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError) as exc:
        raise TargetError(f"redis-server on 127.0.0.1:{port}, {words[0]}: {exc!r}") from exc


def redis_args(binary: str, port: int, directory: Path) -> list[str]:
    return [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", *REDIS_PERSISTENCE,
        "--dir", str(directory), "--logfile", str(directory / "redis.log"),
    ]  # fmt: skip


def redis_binary(name: str) -> str:
    """The path of `name` (on PATH or a path); TargetError naming the option if none."""
    found = shutil.which(name)
    if found is None:
        raise TargetError(
            f"no redis-server at {name!r}: install redis-server or give --redis-server PATH"
        )
    return found


def redis_version(binary: str) -> str:
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TargetError(f"{binary} --version: {exc}") from exc
    return done.stdout.strip()


class RedisProcess:
    """A private redis-server in its own session; see the module docstring."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    async def start(cls, binary: str, directory: Path, attempts: int = 3) -> RedisProcess:
        """Start it on a free port (another when that one was taken meanwhile)."""
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        for _ in range(attempts):
            port = free_port()
            proc = await asyncio.create_subprocess_exec(
                *redis_args(binary, port, directory), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            redis = cls(proc, port, directory / "redis.log")
            if await redis._answers():
                return redis
            await redis.stop()
        log = directory / "redis.log"
        raise TargetError(f"redis-server did not answer PING in {REDIS_START:g} s; see {log}")

    async def _answers(self) -> bool:
        deadline = time.monotonic() + REDIS_START
        while time.monotonic() < deadline and self.proc.returncode is None:
            with contextlib.suppress(TargetError):
                if await redis_call(self.port, "PING") == "PONG":
                    return True
            await asyncio.sleep(0.05)
        return False

    async def flushall(self) -> None:
        reply = await redis_call(self.port, "FLUSHALL")
        if reply != "OK":
            raise TargetError(f"redis-server answered FLUSHALL with {reply!r}")

    async def stop(self) -> None:
        await stop_process(self.proc)


# -- CPU time from /proc --------------------------------------------------------------------


def stat_cpu(stat: str) -> tuple[int, int]:
    """(process group, CPU ticks) of a /proc/PID/stat text: utime + stime + cutime + cstime.

    The fields are counted after the name, which is in parentheses and may hold spaces.
    """
    fields = stat.rpartition(")")[2].split()
    return int(fields[2]), sum(int(x) for x in fields[11:15])


def group_cpu(groups: Iterable[int], proc: Path = PROC) -> dict[int, float]:
    """CPU seconds of each process group: the sum over its processes alive now."""
    ticks = dict.fromkeys(groups, 0)
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            group, used = stat_cpu((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):  # it exited meanwhile
            continue
        if group in ticks:
            ticks[group] += used
    hz = os.sysconf("SC_CLK_TCK")
    return {group: used / hz for group, used in ticks.items()}


# -- one setup, measured once ---------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One setup in one round: the generators' reports, the sink's count, the CPU used."""

    setup: str
    round: int
    reports: tuple[Report, ...]
    latency: Latency  # every generator's, pooled
    sink: dict[str, Any]
    cpu: dict[str, float]  # seconds: "gateway" (every node's group), "redis"
    busy_before: float | None = None

    @property
    def sent(self) -> int:
        return sum(r.sent for r in self.reports)

    @property
    def accepted(self) -> int:
        return sum(r.accepted for r in self.reports)

    @property
    def started_at(self) -> float:
        return min(r.started_at for r in self.reports)

    @property
    def accept_rate(self) -> float | None:
        span = max(r.finished_at for r in self.reports) - self.started_at
        return self.accepted / span if span > 0 else None

    @property
    def end_to_end_rate(self) -> float | None:
        last = self.sink.get("last_arrival")
        if not last or last <= self.started_at:
            return None
        return float(self.sink["messages"]) / (float(last) - self.started_at)

    def cpu_us_per_message(self, part: str | None = None) -> float | None:
        """CPU µs per accepted message of `part` ("gateway", "redis"; None: both)."""
        used = sum(self.cpu.values()) if part is None else self.cpu[part]
        return used / self.accepted * 1e6 if self.accepted else None

    def cpu_s_per_1000(self, part: str) -> float | None:
        per = self.cpu_us_per_message(part)
        return None if per is None else per / 1000

    def complete(self) -> bool:
        """Every accepted message arrived, once."""
        counts = (self.sink.get("unique_ids"), self.sink.get("lost"), self.sink.get("duplicates"))
        return self.accepted > 0 and counts == (self.accepted, 0, 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "setup": self.setup,
            "round": self.round,
            "sent": self.sent,
            "accepted": self.accepted,
            "accept_rate": self.accept_rate,
            "end_to_end_rate": self.end_to_end_rate,
            "latency_ms": asdict(self.latency),
            "cpu_s": self.cpu,
            "cpu_s_per_1000": {part: self.cpu_s_per_1000(part) for part in self.cpu},
            "busy_before": self.busy_before,
            "complete": self.complete(),
            "generators": [r.to_json() for r in self.reports],
            "sink": self.sink,
        }


@dataclass(frozen=True)
class Bench:
    """What every setup shares: the options, redis-server, the sink, the work directory."""

    options: NodesOptions
    redis: RedisProcess
    sink: SinkProcess
    work: Path
    log: TextIO


async def measure(bench: Bench, setup: Setup, round_no: int) -> Run:
    """Measure `setup` once, on a fresh Redis database and fresh nodes."""
    await bench.redis.flushall()
    await bench.sink.request("POST", "/reset")
    gateways = [_node(bench, setup, round_no, i) for i in range(setup.nodes)]
    try:
        await _start(gateways)
        return await _load(bench, setup, round_no, gateways)
    finally:
        for gateway in gateways:
            await gateway.stop()


def _node(bench: Bench, setup: Setup, round_no: int, index: int) -> GatewayInstance:
    o = bench.options
    return GatewayInstance(
        bench.work / f"round-{round_no}" / setup.name / f"node-{index + 1}", free_port(),
        free_port(), DOMAIN, bench.sink.smtp, o.sources, SENDER_DOMAIN,
        overrides=setup_overrides(setup, index, bench.redis.url, o.ugem_overrides),
    )  # fmt: skip


async def _start(gateways: list[GatewayInstance]) -> None:
    """The first node registers the connection (in the store the others share)."""
    await gateways[0].start()
    for gateway in gateways[1:]:
        gateway.write()
        await gateway.respawn()


async def _load(bench: Bench, setup: Setup, round_no: int, gateways: list[GatewayInstance]) -> Run:
    o = bench.options
    bench.log.write(f"round {round_no}, {setup.name}: {o.messages} messages\n")
    busy = await settle(QUIET_CPU, o.settle) if o.settle > 0 else None
    groups = {"gateway": [_pid(g) for g in gateways], "redis": [bench.redis.proc.pid]}
    before = _cpu(groups)
    loads = split_load(o, [g.port for g in gateways], f"{setup.name}-r{round_no}")
    results: list[RunResult] = await asyncio.gather(*(generator.run(load) for load in loads))
    accepted = sum(r.report.accepted for r in results)
    await bench.sink.drain(accepted, o.stall)
    after = _cpu(groups)
    stats = await bench.sink.expect([i for r in results for i in r.accepted_ids])
    return Run(
        setup.name, round_no, tuple(r.report for r in results),
        Latency.of([s for r in results for s in r.latencies]), stats,
        {part: after[part] - before[part] for part in groups}, busy,
    )  # fmt: skip


def _pid(node: GatewayInstance) -> int:
    if node.proc is None:
        raise TargetError(f"the gateway is not running; see {node.log}")
    return node.proc.pid  # its own session: the group's id


def _cpu(groups: dict[str, list[int]]) -> dict[str, float]:
    seconds = group_cpu(g for members in groups.values() for g in members)
    return {part: sum(seconds[g] for g in members) for part, members in groups.items()}


# -- the whole benchmark --------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    of: Callable[[Run], float | None]
    pattern: str


FIGURES = (
    Figure("accept_rate", "accept rate (msg/s)", lambda r: r.accept_rate, "{:.0f}"),
    Figure("end_to_end_rate", "end to end (msg/s)", lambda r: r.end_to_end_rate, "{:.0f}"),
    Figure("accept_p50_ms", "accept p50 (ms)", lambda r: r.latency.p50, "{:.1f}"),
    Figure("accept_p99_ms", "accept p99 (ms)", lambda r: r.latency.p99, "{:.1f}"),
    Figure(
        "gateway_cpu_s_per_1000",
        "gateway CPU s/1000 msg",
        lambda r: r.cpu_s_per_1000("gateway"),
        "{:.2f}",
    ),
    Figure(
        "redis_cpu_s_per_1000",
        "redis CPU s/1000 msg",
        lambda r: r.cpu_s_per_1000("redis"),
        "{:.3f}",
    ),
)


def shared_log_cost(part: str | None) -> Callable[[Run, Run], float | None]:
    """CPU µs per message of one-redis (`on`) minus one-redis-noshare (`off`)."""

    def cost(on: Run, off: Run) -> float | None:
        a, b = on.cpu_us_per_message(part), off.cpu_us_per_message(part)
        return None if a is None or b is None else a - b

    return cost


def rate_ratio(rate: Callable[[Run], float | None]) -> Callable[[Run, Run], float | None]:
    """`rate` of the first run / that of the second."""

    def ratio(top: Run, bottom: Run) -> float | None:
        a, b = rate(top), rate(bottom)
        return a / b if a is not None and b else None

    return ratio


@dataclass(frozen=True)
class NodesResult:
    options: NodesOptions
    redis_version: str
    runs: tuple[Run, ...]

    def runs_of(self, setup: str) -> list[Run]:
        return [r for r in self.runs if r.setup == setup]

    def figure(self, setup: str, figure: Figure) -> Spread | None:
        return Spread.of(figure.of(r) for r in self.runs_of(setup))

    def per_round(self, a: str, b: str, pair: Callable[[Run, Run], float | None]) -> Spread | None:
        """`pair(run of a, run of b)` in each round that has both, over rounds."""
        rounds = sorted({r.round for r in self.runs})
        found = {(r.setup, r.round): r for r in self.runs}
        return Spread.of(
            pair(found[a, n], found[b, n]) for n in rounds if (a, n) in found and (b, n) in found
        )

    def shared_log_cost(self, part: str | None = None) -> Spread | None:
        return self.per_round("one-redis", "one-redis-noshare", shared_log_cost(part))

    def two_vs_one(self, rate: Callable[[Run], float | None]) -> Spread | None:
        return self.per_round("two-redis", "one-redis", rate_ratio(rate))

    def complete(self) -> bool:
        return bool(self.runs) and all(r.complete() for r in self.runs)


async def nodes(options: NodesOptions, log: TextIO = sys.stderr) -> NodesResult:
    """The whole benchmark; see the module docstring."""
    options.check()
    binary = redis_binary(options.redis_server)
    version = redis_version(binary)
    work = options.workdir or Path(tempfile.mkdtemp(prefix="loadtest-nodes-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        async with contextlib.AsyncExitStack() as stack:
            redis = await RedisProcess.start(binary, work / "redis")
            stack.push_async_callback(redis.stop)
            sink = await SinkProcess.start(work / "sink")
            stack.push_async_callback(sink.stop)
            log.write(f"redis-server on port {redis.port}, sink on port {sink.smtp[1]}\n")
            bench = Bench(options, redis, sink, work, log)
            runs = [
                await measure(bench, setup, n)
                for n in range(1, options.rounds + 1)
                for setup in SETUPS
            ]
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)
    return NodesResult(options, version, tuple(runs))


# -- the report -----------------------------------------------------------------------------

WIDTH = 24


def _cell(spread: Spread | None, pattern: str) -> str:
    return "-" if spread is None else spread.text(pattern)


def _row(label: str, cells: Iterable[str]) -> str:
    return f"{label:<{WIDTH}}" + "".join(f"{c:>{WIDTH}}" for c in cells)


def _counts(runs: list[Run]) -> str:
    return f"{sum(r.sent for r in runs)}/{sum(r.accepted for r in runs)}"


def _losses(runs: list[Run]) -> str:
    lost = sum(int(r.sink.get("lost") or 0) for r in runs)
    return f"{lost}/{sum(int(r.sink.get('duplicates') or 0) for r in runs)}"


def _busy(runs: list[Run]) -> str:
    busy = Spread.of(r.busy_before for r in runs)
    return "-" if busy is None else busy.text("{:.0%}")


def _derived(result: NodesResult) -> list[str]:
    total, gateway, redis = (result.shared_log_cost(p) for p in (None, "gateway", "redis"))
    e2e = result.two_vs_one(lambda r: r.end_to_end_rate)
    accept = result.two_vs_one(lambda r: r.accept_rate)
    return [
        "shared traffic log, CPU per message (one-redis - one-redis-noshare): "
        f"{_cell(total, '{:.1f}')} us (gateway {_cell(gateway, '{:.1f}')}, "
        f"redis {_cell(redis, '{:.1f}')})",
        f"two nodes / one (two-redis / one-redis): end to end {_cell(e2e, '{:.2f}')}, "
        f"accept rate {_cell(accept, '{:.2f}')}",
    ]


def render_text(result: NodesResult) -> str:
    o = result.options
    lines = [
        f"Several nodes: {o.messages} messages of {o.size.describe()} over {o.connections} "
        f"connections ({o.per_connection} per connection) from {', '.join(o.sources)}",
        f"{o.rounds} round(s) of the setups in turn; each figure the median over rounds [min..max]",
        f"{result.redis_version}; {' '.join(REDIS_PERSISTENCE)}",
        "",
        _row("", SETUP_NAMES),
    ]
    for fig in FIGURES:
        lines.append(
            _row(fig.label, (_cell(result.figure(s, fig), fig.pattern) for s in SETUP_NAMES))
        )
    for label, fn in (
        ("sent/accepted", _counts),
        ("lost/dup", _losses),
        ("CPU busy before", _busy),
    ):
        lines.append(_row(label, (fn(result.runs_of(s)) for s in SETUP_NAMES)))
    lines += ["", *_derived(result)]
    lines.append(
        "every accepted message arrived once"
        if result.complete()
        else "NOT COMPLETE: a setup lost or duplicated messages, or none was accepted"
    )
    return "\n".join(lines) + "\n"


def _spread_json(spread: Spread | None) -> dict[str, Any] | None:
    return None if spread is None else asdict(spread)


def render_json(result: NodesResult) -> dict[str, Any]:
    o = result.options
    setups = {
        s: {fig.key: _spread_json(result.figure(s, fig)) for fig in FIGURES} for s in SETUP_NAMES
    }
    return {
        **run_header(o, None),
        "rounds": o.rounds,
        "order": list(SETUP_NAMES),
        "redis": {"version": result.redis_version, "persistence": " ".join(REDIS_PERSISTENCE)},
        "setups": setups,
        "shared_traffic_cost_us_per_message": {
            str(part or "total"): _spread_json(result.shared_log_cost(part))
            for part in (None, "gateway", "redis")
        },
        "two_vs_one": {
            "end_to_end": _spread_json(result.two_vs_one(lambda r: r.end_to_end_rate)),
            "accept_rate": _spread_json(result.two_vs_one(lambda r: r.accept_rate)),
        },
        "complete": result.complete(),
        "runs": [r.to_json() for r in result.runs],
    }
