"""Hostile input (issue 10): a node's memory, event loop and connection caps under abuse.

`hostile(options)` runs the scenarios of `options.only`, in the order big,
header, idle, each against a fresh `ugem serve` (loadtest.gateway: its own
directory, data and free loopback ports under one work directory, the
connection `mdai.gov.kz` whose servers are the connected addresses below),
with one sink process (loadtest.processes) as the next hop of both test
domains, example.org and mdai.gov.kz (`[delivery] routes`). Before each it
waits up to 10 s for a second with at most a quarter of the CPUs busy and
reports the share it measured.

- **big**: `senders` sessions at once from connected servers (`big_sources`:
  50 sessions an address, under the node's 100 per connected server), each
  sending one message of `size` bytes to example.org, its text streamed in
  256 KiB writes (loadtest.hostile_clients). Meanwhile a thread samples the
  VmRSS of the node's process tree every `sample_interval` (loadtest.peak),
  from before the first connect to 1 s after the last reply. Reports the
  replies by code (with the first text of each), failures by reason, the
  elapsed time (first connect to last reply), end-of-data-to-reply latency,
  the RSS before, at its peak (and when), at the end and its peak in each
  5 s, beside the node's `[smtp] data_memory` budget, and how many messages
  reached the sink meanwhile (the node delivers while it receives).
- **header**: a stranger (`header_source`) sends one message from the
  internet to clerk@mdai.gov.kz (a connected domain: the inbound checks run)
  whose header holds one field folded over `header_size` bytes;
  `[smtp] max_header_size` is raised above it (at least 4 MiB) so it is
  parsed, not refused. From 1 s before its connect to 1 s after its reply, a
  probe connects every `probe_interval` (from `PROBE_SOURCES`, strangers
  too) and times the first line of the banner. Reports the folded message's
  reply, its time from the end of data to the reply, and the banner latency
  (p50/p99/max) of the probes started before, during (connect to reply) and
  after it.
- **idle**: loadtest.idle holds `strangers` sessions from `stranger_sources`
  (session i from address i mod count) for `hold` seconds, with the node's
  default caps; once all are settled, the connected server `server` sends
  one 2 KB message to example.org. Reports the strangers admitted (220) and
  refused (421), the node's RSS before and while held, and the connected
  server's reply, its time to open the session (connect, banner, EHLO) and
  from the end of data to the reply.

The inbound checks of the header scenario (SPF, DKIM, DMARC) ask DNS of a
loopback port where nothing listens (`[delivery] dns_servers`, `dns_timeout`
0.5 s, `[auth] timeout` 1 s): every lookup is a temperror at once, and the
header is parsed all the same. `[delivery] concurrency_per_destination` is
the node's default, 20 (loadtest.gateway's is 50, for the throughput runs).
`ugem_overrides` are applied last.

`findings(result)` states each target the node missed, plainly: the big
scenario's RSS peak above its first sample by more than 3 times data_memory
(the README's "about three times the budget"), no message accepted there,
senders that got no reply at all, the node gone during a run; a banner
p99 of `BANNER_TARGET` (100 ms) or more during or right after the folded
message, or probes that got no banner at all; the connected server not
answered 250 while the strangers are held.

Bounds (`HostileOptions.check`, `UsageError`): at most 1000 senders of at
most 64 MiB, a folded header of at most 16 MiB, at most 20,000 strangers,
holds of at most 5 minutes, a time limit of at most an hour per scenario;
every address on loopback. Each scenario's clients stop at `timeout`. The
node and the sink are stopped at the end, on errors and on cancellation too;
the work directory is removed unless `keep`. A node that does not start is
a `TargetError` naming its log. `render_text` and `render_json` print the
`HostileResult`.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any, TextIO

from loadtest import hostile_clients as clients
from loadtest.compare import DOMAIN, SENDER_DOMAIN, settle
from loadtest.errors import TargetError, UsageError
from loadtest.gateway import GatewayInstance
from loadtest.generator import new_run_id
from loadtest.hostile_clients import Probe, Sent
from loadtest.idle import SPARE_FILES, IdleOptions, IdleReport, ensure_open_files, hold_idle
from loadtest.idle import require_loopback as _loopback
from loadtest.memory import MemorySample, mib
from loadtest.peak import PeakSampler, RssTrace
from loadtest.ports import free_port
from loadtest.processes import SinkProcess
from loadtest.report import Latency
from loadtest.smtp import Refused, Session, SessionLost

KIB, MIB = 1024, 1024 * 1024
SCENARIOS = ("big", "header", "idle")
DEFAULT_SIZE = 25 * MIB - 64 * KIB  # headroom below the node's max_message_size of 25 MiB
DEFAULT_DATA_MEMORY = 512 * MIB  # the node's [smtp] data_memory default
DEFAULT_CONCURRENCY = 20  # the node's [delivery] concurrency_per_destination default
MIN_MAX_HEADER = 4 * MIB
PER_SOURCE = 50  # big: sessions per connected-server address
BANNER_TARGET = 0.100  # seconds
RSS_MULTIPLE = 3  # the README: memory for mail being received within about 3 x the budget
PROBE_SOURCES = tuple(f"127.0.3.{i}" for i in range(1, 11))
PROBE_OUTSTANDING = 150
STRANGER_SOURCES = tuple(f"127.0.1.{i}" for i in range(1, 31))
WINDOW = 1.0  # header: probing before and after the folded message; big: the RSS tail
SETTLE = 10.0
RCPT_INBOUND = "clerk@mdai.gov.kz"

MAX_SENDERS = 1000
MAX_SIZE = 64 * MIB
MAX_HEADER = 16 * MIB
MAX_STRANGERS = 20_000
MAX_HOLD = 300.0
MAX_TIMEOUT = 3600.0


@dataclass(frozen=True)
class HostileOptions:
    only: tuple[str, ...] = SCENARIOS
    senders: int = 200
    size: int = DEFAULT_SIZE
    sample_interval: float = 0.05
    header_size: int = 2 * MIB
    header_source: str = "127.0.0.9"
    probe_interval: float = 0.02
    strangers: int = 3000
    stranger_sources: tuple[str, ...] = STRANGER_SOURCES
    server: str = "127.0.0.2"
    hold: float = 5.0
    timeout: float = 300.0
    workers: int | None = None
    ugem_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    workdir: Path | None = None
    keep: bool = False

    @property
    def big_sources(self) -> tuple[str, ...]:
        """The connected addresses the big senders use: 127.0.2.1 on, 50 sessions each."""
        count = max(1, math.ceil(self.senders / PER_SOURCE))
        return tuple(f"127.0.2.{i}" for i in range(1, count + 1))

    @property
    def connected(self) -> tuple[str, ...]:
        """Every address registered as a server of the connection mdai.gov.kz."""
        return (self.server, *self.big_sources)

    def check(self) -> None:
        """UsageError unless every count, size and time is within its bound, on loopback."""
        bounds: list[tuple[str, float, float, float]] = [
            ("--senders", self.senders, 1, MAX_SENDERS),
            ("--size", self.size, KIB, MAX_SIZE),
            ("--sample-interval", self.sample_interval, 0.01, 1.0),
            ("--header-size", self.header_size, KIB, MAX_HEADER),
            ("--probe-interval", self.probe_interval, 0.005, 1.0),
            ("--strangers", self.strangers, 1, MAX_STRANGERS),
            ("--hold", self.hold, 0.1, MAX_HOLD),
            ("--timeout", self.timeout, 1.0, MAX_TIMEOUT),
        ]
        for name, value, low, high in bounds:
            if not low <= value <= high:
                raise UsageError(f"{name} must be {low:g}..{high:g}, not {value:g}")
        if not self.only or any(name not in SCENARIOS for name in self.only):
            raise UsageError(f"scenarios are {', '.join(SCENARIOS)}")
        for host in (self.header_source, self.server, *self.stranger_sources):
            _loopback(host)
        strangers = {self.header_source, *self.stranger_sources, *PROBE_SOURCES}
        if strangers & set(self.connected):
            raise UsageError(
                f"--server {self.server} and the big senders' {_span(self.big_sources)} are "
                "connected servers: no stranger may use them"
            )


def parse_bytes(text: str) -> int:
    """Bytes from `text`: a whole number, or one with K or M (KiB, MiB: 2M, 512K)."""
    raw = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = {"K": KIB, "M": MIB}.get(raw[-1:], 1)
    number = raw[:-1] if scale > 1 else raw
    if not number.isdigit():
        raise UsageError(f"bad size {text!r}: use bytes, or a number with K or M (2M, 512K)")
    return int(number) * scale


def node_setting(overrides: dict[str, dict[str, str]], section: str, key: str, default: int) -> int:
    """An integer gateway setting as the overrides leave it (TOML text), else `default`."""
    text = overrides.get(section, {}).get(key)
    if text is None:
        return default
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return default
    return int(value) if isinstance(value, int | float) else default


def max_header_for(header_size: int) -> int:
    """`[smtp] max_header_size` that lets a folded field of `header_size` bytes be parsed."""
    return max(MIN_MAX_HEADER, header_size + 64 * KIB)


def settings(
    options: HostileOptions, scenario: str, sink: tuple[str, int]
) -> dict[str, dict[str, str]]:
    """The node's config for `scenario`, with the caller's overrides applied last."""
    hop = json.dumps(f"{sink[0]}:{sink[1]}")
    dead_dns = json.dumps(f"127.0.0.1:{free_port()}")
    sections: dict[str, dict[str, str]] = {
        "delivery": {
            "routes": f"{{ {json.dumps(DOMAIN)} = {hop}, {json.dumps(SENDER_DOMAIN)} = {hop} }}",
            "dns_servers": f"[{dead_dns}]",
            "dns_timeout": "0.5",
            # the node's default (loadtest.gateway sets 50 for the throughput runs)
            "concurrency_per_destination": str(DEFAULT_CONCURRENCY),
        },
        "auth": {"timeout": "1.0"},
    }
    if scenario == "header":
        sections["smtp"] = {"max_header_size": str(max_header_for(options.header_size))}
    for section, keys in options.ugem_overrides.items():
        sections.setdefault(section, {}).update(keys)
    return sections


# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replies:
    """How one-message clients ended: the reply by code, or a failure by reason."""

    codes: dict[int, int] = field(default_factory=dict)
    texts: dict[int, str] = field(default_factory=dict)  # the first of each code
    failed: dict[str, int] = field(default_factory=dict)
    failure_examples: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, ends: list[Sent | tuple[str, str]]) -> Replies:
        codes: Counter[int] = Counter()
        texts: dict[int, str] = {}
        failed: Counter[str] = Counter()
        examples: dict[str, str] = {}
        for end in ends:
            if isinstance(end, Sent):
                codes[end.code] += 1
                texts.setdefault(end.code, f"{end.code} {end.text}")
            else:
                failed[end[0]] += 1
                examples.setdefault(end[0], end[1])
        return cls(
            dict(sorted(codes.items())), dict(sorted(texts.items())), dict(sorted(failed.items())),
            dict(sorted(examples.items())),
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {
            "by_code": {str(code): n for code, n in self.codes.items()},
            "texts": {str(code): text for code, text in self.texts.items()},
            "failed": self.failed,
            "failure_examples": self.failure_examples,
        }


@dataclass(frozen=True)
class BigResult:
    senders: int
    size: int
    sources: tuple[str, ...]
    budget: int  # [smtp] data_memory, bytes
    replies: Replies
    elapsed: float
    data_latency: Latency  # end of data -> reply, of the messages whose text was sent
    rss: RssTrace
    arrived: int  # messages the next hop received meanwhile (the node delivers as it accepts)
    busy_before: float | None = None

    @property
    def growth_over_budget(self) -> float:
        return self.rss.growth_kib * KIB / self.budget if self.budget else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "senders": self.senders,
            "size": self.size,
            "sources": list(self.sources),
            "data_memory": self.budget,
            "replies": self.replies.to_json(),
            "elapsed_s": self.elapsed,
            "data_latency_ms": _latency_json(self.data_latency),
            "rss": self.rss.to_json(),
            "growth_over_data_memory": self.growth_over_budget,
            "arrived_at_next_hop": self.arrived,
            "busy_before": self.busy_before,
        }


@dataclass(frozen=True)
class HeaderResult:
    header_size: int  # bytes of the folded field
    lines: int  # its lines
    message_size: int
    max_header_size: int
    source: str
    reply: Sent | None
    failure: str  # when there was no reply: why
    message_seconds: float  # connect to the reply (or the failure)
    before: Latency
    during: Latency
    after: Latency
    probe_codes: dict[int, int]
    probe_failed: dict[str, int]
    probe_skipped: int
    probe_interval: float
    busy_before: float | None = None
    slowest: tuple[tuple[float, float], ...] = ()  # (start from the message's connect, s)

    @property
    def worst(self) -> Latency:
        """During or after, whichever has the higher p99."""
        return max((self.during, self.after), key=lambda lat: lat.p99 or 0.0)

    def to_json(self) -> dict[str, Any]:
        reply = self.reply
        return {
            "header_size": self.header_size,
            "lines": self.lines,
            "message_size": self.message_size,
            "max_header_size": self.max_header_size,
            "source": self.source,
            "reply": None if reply is None else f"{reply.code} {reply.text}",
            "reply_code": None if reply is None else reply.code,
            "failure": self.failure or None,
            "end_of_data_to_reply_s": None if reply is None else reply.data_seconds,
            "message_s": self.message_seconds,
            "banner_ms": {
                "before": _latency_json(self.before),
                "during": _latency_json(self.during),
                "after": _latency_json(self.after),
            },
            "probe_interval_s": self.probe_interval,
            "probe_codes": {str(code): n for code, n in self.probe_codes.items()},
            "probe_failed": self.probe_failed,
            "probe_skipped": self.probe_skipped,
            "slowest_probes": [{"at_s": at, "ms": s * 1000} for at, s in self.slowest],
            "busy_before": self.busy_before,
        }


@dataclass(frozen=True)
class ServerSend:
    source: str
    reply: Sent | None
    failure: str  # connect, closed, timeout, or "refused: 421 ..." at the greeting
    open_seconds: float | None  # connect, banner and EHLO
    total_seconds: float

    def to_json(self) -> dict[str, Any]:
        reply = self.reply
        return {
            "source": self.source,
            "reply": None if reply is None else f"{reply.code} {reply.text}",
            "reply_code": None if reply is None else reply.code,
            "failure": self.failure or None,
            "open_s": self.open_seconds,
            "end_of_data_to_reply_s": None if reply is None else reply.data_seconds,
            "total_s": self.total_seconds,
        }


@dataclass(frozen=True)
class IdleResult:
    strangers: IdleReport
    server: ServerSend
    busy_before: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "strangers": self.strangers.to_json(),
            "connected_server": self.server.to_json(),
            "busy_before": self.busy_before,
        }


@dataclass(frozen=True)
class HostileResult:
    options: HostileOptions
    started_at: float  # wall clock
    big: BigResult | None = None
    header: HeaderResult | None = None
    idle: IdleResult | None = None


# -- the run --------------------------------------------------------------------------------


async def hostile(options: HostileOptions, log: TextIO = sys.stderr) -> HostileResult:
    """Every scenario asked for; see the module docstring."""
    options.check()
    ensure_open_files(options.strangers + options.senders + PROBE_OUTSTANDING + SPARE_FILES)
    started_at = time.time()
    work = options.workdir or Path(tempfile.mkdtemp(prefix="loadtest-hostile-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    try:
        sink = await SinkProcess.start(work / "sink")
        try:
            for name in SCENARIOS:
                if name in options.only:
                    results[name] = await _scenario(name, options, work, sink, log)
        finally:
            await sink.stop()
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)
    return HostileResult(options, started_at, **results)


async def _scenario(
    name: str, options: HostileOptions, work: Path, sink: SinkProcess, log: TextIO
) -> BigResult | HeaderResult | IdleResult:
    gateway = GatewayInstance(
        work / f"ugem-{name}", free_port(), free_port(), DOMAIN, sink.smtp, options.connected,
        SENDER_DOMAIN, options.workers, settings(options, name, sink.smtp),
    )  # fmt: skip
    try:
        log.write(f"{name}: starting the gateway on 127.0.0.1:{gateway.port}\n")
        await gateway.start()
        busy = await settle(0.25, SETTLE)
        if name == "big":
            return await _big(options, gateway, sink, busy, log)
        if name == "header":
            return await _header(options, gateway, busy, log)
        return await _idle(options, gateway, busy, log)
    finally:
        await gateway.stop()


def _pid(gateway: GatewayInstance) -> int:
    if gateway.proc is None or gateway.proc.poll() is not None:
        raise TargetError(f"the gateway is not running; see {gateway.log}")
    return gateway.proc.pid


async def _big(
    options: HostileOptions,
    gateway: GatewayInstance,
    sink: SinkProcess,
    busy: float | None,
    log: TextIO,
) -> BigResult:
    sources = options.big_sources
    run_id = f"big-{new_run_id()}"
    date = formatdate(localtime=False)
    sender = f"big@{SENDER_DOMAIN}"
    head_length = len(clients.big_head(0, run_id, sender, f"user0@{DOMAIN}", date))
    body = clients.filler(options.size - head_length)
    arrived_before = int((await sink.stats())["messages"])
    sampler = PeakSampler(_pid(gateway), options.sample_interval)
    sampler.start()
    log.write(
        f"big: {options.senders} senders of {options.size} bytes from {_span(sources)}, "
        f"RSS every {options.sample_interval * 1000:g} ms\n"
    )
    try:
        await asyncio.sleep(options.sample_interval * 4)  # a few samples before the load
        started = time.monotonic()
        deadline = asyncio.get_running_loop().time() + options.timeout
        latencies: list[float] = []

        async def one(n: int) -> Sent | tuple[str, str]:
            rcpt = f"user{n}@{DOMAIN}"
            head = clients.big_head(n, run_id, sender, rcpt, date)
            end = await _one_message(
                gateway.port, sources[n % len(sources)], sender, rcpt, (head, body), deadline
            )
            if isinstance(end, Sent) and end.data_seconds is not None:
                latencies.append(end.data_seconds)
            return end

        ends = await asyncio.gather(*(one(n) for n in range(options.senders)))
        elapsed = time.monotonic() - started
        await asyncio.sleep(WINDOW)
    finally:
        trace = await asyncio.to_thread(sampler.stop)
    arrived = int((await sink.stats())["messages"]) - arrived_before
    return BigResult(
        options.senders, options.size, sources,
        node_setting(options.ugem_overrides, "smtp", "data_memory", DEFAULT_DATA_MEMORY),
        Replies.of(list(ends)), elapsed, Latency.of(latencies), trace, arrived, busy,
    )  # fmt: skip


async def _one_message(
    port: int,
    source: str,
    sender: str,
    rcpt: str,
    parts: tuple[bytes, ...],
    deadline: float,
    opened: list[float] | None = None,
) -> Sent | tuple[str, str]:
    """One session, one message: the reply that ended it, or (reason, detail) of a failure.

    A refused greeting or EHLO counts as a reply. `opened` receives the seconds the session
    took to open (connect, banner, EHLO).
    """
    stage = "connect"
    session: Session | None = None
    try:
        async with asyncio.timeout_at(deadline):
            started = time.monotonic()
            session = await Session.open("127.0.0.1", port, source, "hostile.loadtest.invalid")
            if opened is not None:
                opened.append(time.monotonic() - started)
            stage = "closed"
            return await clients.transact(session, sender, rcpt, parts)
    except Refused as exc:
        return Sent(exc.code, str(exc).partition(" ")[2])
    except TimeoutError:  # before OSError, whose subclass it is
        return ("timeout", f"no reply within the scenario's --timeout ({stage} stage)")
    except (SessionLost, OSError) as exc:
        return (stage, str(exc))
    finally:
        if session is not None:
            await session.quit()


async def _header(
    options: HostileOptions, gateway: GatewayInstance, busy: float | None, log: TextIO
) -> HeaderResult:
    run_id = f"header-{new_run_id()}"
    sender = "someone@example.org"
    text = clients.folded_message(options.header_size, sender, RCPT_INBOUND, run_id)
    folded = clients.folded_header(options.header_size)
    prober = clients.Prober(
        "127.0.0.1", gateway.port, PROBE_SOURCES, options.probe_interval,
        max_outstanding=PROBE_OUTSTANDING,
    )  # fmt: skip
    log.write(
        f"header: a {len(folded)}-byte folded field from {options.header_source}, "
        f"banner probes every {options.probe_interval * 1000:g} ms\n"
    )
    prober.start()
    try:
        await asyncio.sleep(WINDOW)
        sent_at = time.monotonic()
        deadline = asyncio.get_running_loop().time() + options.timeout
        end = await _one_message(
            gateway.port, options.header_source, sender, RCPT_INBOUND, (text,), deadline
        )
        replied_at = time.monotonic()
        await asyncio.sleep(WINDOW)
    finally:
        probes = await prober.stop()
    windows = split_probes(probes, sent_at, replied_at)
    return HeaderResult(
        header_size=len(folded),
        lines=folded.count(b"\r\n"),
        message_size=len(text),
        max_header_size=node_setting(
            options.ugem_overrides, "smtp", "max_header_size", max_header_for(options.header_size)
        ),
        source=options.header_source,
        reply=end if isinstance(end, Sent) else None,
        failure="" if isinstance(end, Sent) else f"{end[0]}: {end[1]}",
        message_seconds=replied_at - sent_at,
        before=windows[0],
        during=windows[1],
        after=windows[2],
        probe_codes=dict(sorted(Counter(p.code for p in probes if p.code is not None).items())),
        probe_failed=dict(sorted(Counter(p.failure for p in probes if p.failure).items())),
        probe_skipped=prober.skipped,
        probe_interval=options.probe_interval,
        busy_before=busy,
        slowest=slowest_probes(probes, sent_at),
    )


def slowest_probes(
    probes: list[Probe], origin: float, count: int = 3
) -> tuple[tuple[float, float], ...]:
    """The `count` slowest banners: (start in s from `origin`, seconds), slowest first."""
    timed = sorted((p for p in probes if p.code is not None), key=lambda p: -p.seconds)
    return tuple((p.started - origin, p.seconds) for p in timed[:count])


def split_probes(probes: list[Probe], start: float, end: float) -> tuple[Latency, Latency, Latency]:
    """Banner latency of the probes started before `start`, from it to `end`, and after."""
    before: list[float] = []
    during: list[float] = []
    after: list[float] = []
    for probe in probes:
        if probe.code is None:
            continue
        window = before if probe.started < start else during if probe.started <= end else after
        window.append(probe.seconds)
    return Latency.of(before), Latency.of(during), Latency.of(after)


async def _idle(
    options: HostileOptions, gateway: GatewayInstance, busy: float | None, log: TextIO
) -> IdleResult:
    idle_options = IdleOptions(
        "127.0.0.1", gateway.port, options.strangers, options.stranger_sources, _pid(gateway),
        options.hold, timeout=min(options.timeout, 30.0),
    )  # fmt: skip
    sends: list[ServerSend] = []

    async def connected_server_sends() -> None:
        log.write(f"idle: strangers settled; {options.server} (connected) sends a message\n")
        sends.append(await _server_send(options, gateway.port))

    log.write(
        f"idle: {options.strangers} idle strangers from {_span(options.stranger_sources)}, "
        f"held {options.hold:g} s\n"
    )
    report = await hold_idle(idle_options, while_held=connected_server_sends)
    return IdleResult(report, sends[0], busy)


async def _server_send(options: HostileOptions, port: int) -> ServerSend:
    run_id = f"idle-{new_run_id()}"
    sender, rcpt = f"server@{SENDER_DOMAIN}", f"user0@{DOMAIN}"
    head = clients.big_head(0, run_id, sender, rcpt, formatdate(localtime=False))
    text = head + clients.filler(2048 - len(head))
    opened: list[float] = []
    started = time.monotonic()
    deadline = asyncio.get_running_loop().time() + min(options.timeout, 60.0)
    end = await _one_message(port, options.server, sender, rcpt, (text,), deadline, opened)
    total = time.monotonic() - started
    if isinstance(end, Sent):
        return ServerSend(options.server, end, "", opened[0] if opened else None, total)
    return ServerSend(options.server, None, f"{end[0]}: {end[1]}", None, total)


# -- findings and rendering -----------------------------------------------------------------


def findings(result: HostileResult) -> list[str]:
    """Each target the node missed, in a sentence; empty when it met them all."""
    found: list[str] = []
    big, header, idle = result.big, result.header, result.idle
    if big is not None:
        if big.rss.growth_kib * KIB > RSS_MULTIPLE * big.budget:
            found.append(
                f"big: the node's RSS rose {mib(big.rss.growth_kib)} above its first sample, "
                f"more than {RSS_MULTIPLE} x data_memory ({mib(big.budget // KIB)}), the "
                "README's bound for mail being received"
            )
        if not big.replies.codes.get(250):
            found.append("big: no message was accepted (no 250)")
        if big.replies.failed:
            first = "; ".join(f"{k}: {v}" for k, v in big.replies.failure_examples.items())
            found.append(
                f"big: {sum(big.replies.failed.values())} senders got no reply "
                f"({_counts(big.replies.failed)}; first: {first})"
            )
        if big.rss.lost:
            found.append("big: the node's process went away during the run")
    if header is not None:
        worst = header.worst
        if worst.p99 is not None and worst.p99 >= BANNER_TARGET * 1000:
            found.append(
                f"header: banner p99 {worst.p99:.1f} ms (max {worst.max:.1f} ms) while the folded "
                f"header was handled: over the {BANNER_TARGET * 1000:g} ms target"
            )
        if header.probe_failed:
            found.append(f"header: probes that got no banner: {_counts(header.probe_failed)}")
        if header.reply is None:
            found.append(f"header: the folded message got no reply ({header.failure})")
    if idle is not None:
        reply = idle.server.reply
        if reply is None or reply.code != 250:
            what = idle.server.failure if reply is None else f"{reply.code} {reply.text}"
            found.append(
                f"idle: the connected server {idle.server.source} did not get 250 ({what})"
            )
    return found


def _span(addresses: tuple[str, ...]) -> str:
    if len(addresses) == 1:
        return addresses[0]
    return f"{addresses[0]}-{addresses[-1]} ({len(addresses)} addresses)"


def _counts(counts: dict[int, int] | dict[str, int]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in counts.items()) or "none"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f} ms"


def _busy(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _latency_json(latency: Latency) -> dict[str, Any]:
    return {
        "count": latency.count,
        "p50": latency.p50,
        "p90": latency.p90,
        "p99": latency.p99,
        "max": latency.max,
        "mean": latency.mean,
    }


def _lat(latency: Latency) -> str:
    if not latency.count:
        return "no probe"
    return (
        f"p50 {latency.p50:.1f} ms  p99 {latency.p99:.1f} ms  max {latency.max:.1f} ms  "
        f"({latency.count} probes)"
    )


def _rss_row(sample: MemorySample) -> str:
    return mib(sample.rss_kib)


def _big_rows(big: BigResult) -> list[tuple[str, str]]:
    rss = big.rss
    return [
        ("load", f"{big.senders} senders at once, one message of {big.size} bytes each, "
                 f"from {_span(big.sources)} (connected) to {DOMAIN}"),
        ("replies", _counts(big.replies.codes)),
        *((f"  {code}", text) for code, text in big.replies.texts.items()),
        ("failed", _counts(big.replies.failed)),
        *((f"  first {reason}", text) for reason, text in big.replies.failure_examples.items()),
        ("elapsed", f"{big.elapsed:.1f} s, first connect to last reply"),
        ("end of data->reply", big.data_latency.to_text()),
        ("node RSS", f"pid {rss.first.pid}, {rss.peak.scope}, every "
                     f"{rss.interval * 1000:g} ms ({rss.samples} samples)"),
        ("  before", _rss_row(rss.first)),
        ("  peak", f"{_rss_row(rss.peak)} at {rss.peak_at:.1f} s (+{mib(rss.growth_kib)}, "
                   f"{big.growth_over_budget:.2f} x data_memory {mib(big.budget // KIB)})"),
        ("  end", _rss_row(rss.last) + (" (the process went away)" if rss.lost else "")),
        ("  peak every 5 s", ", ".join(f"{kib / 1024:.0f}" for kib in rss.steps(5.0))
                             + " MiB"),
        ("arrived at next hop", f"{big.arrived} by the end (delivered while the rest was "
                                "received)"),
        ("CPU busy before", _busy(big.busy_before)),
    ]  # fmt: skip


def _header_rows(h: HeaderResult) -> list[tuple[str, str]]:
    reply = h.reply
    answer = h.failure if reply is None else f"{reply.code} {reply.text}"
    return [
        ("message", f"{h.message_size} bytes from {h.source} (stranger) to {RCPT_INBOUND}: "
                    f"one field folded over {h.lines} lines, {h.header_size} bytes "
                    f"(max_header_size {h.max_header_size})"),
        ("reply", answer),
        ("end of data->reply", _ms(None if reply is None else reply.data_seconds)),
        ("connect->reply", _ms(h.message_seconds)),
        ("banner, before", _lat(h.before)),
        ("banner, during", _lat(h.during)),
        ("banner, after", _lat(h.after)),
        ("probes", f"every {h.probe_interval * 1000:g} ms; by code {_counts(h.probe_codes)}; "
                   f"failed {_counts(h.probe_failed)}; skipped {h.probe_skipped}"),
        ("slowest banners", ", ".join(f"{s * 1000:.1f} ms at {at:+.2f} s" for at, s in h.slowest)
                            + " (from the folded message's connect)"),
        ("CPU busy before", _busy(h.busy_before)),
    ]  # fmt: skip


def _idle_rows(idle: IdleResult) -> list[tuple[str, str]]:
    s, srv = idle.strangers, idle.server
    o = s.options
    answer = srv.failure if srv.reply is None else f"{srv.reply.code} {srv.reply.text}"
    rows = [
        ("strangers", f"{o.connections} idle sessions from {_span(o.sources)}, "
                      f"held {o.hold:g} s"),
        ("  admitted (220)", str(s.greeted)),
        ("  refused", _counts(s.refused)),
        ("  failed", _counts(s.failed)),
        ("  closed in hold", str(s.dropped)),
        ("  opened in", f"{s.open_seconds:.2f} s"),
        ("connected server", f"{srv.source}: {answer}"),
        ("  open (220+EHLO)", _ms(srv.open_seconds)),
        ("  end of data->reply", _ms(None if srv.reply is None else srv.reply.data_seconds)),
        ("  total", _ms(srv.total_seconds)),
    ]  # fmt: skip
    if s.memory_before is not None and s.memory_held is not None:
        rows += [
            ("node RSS", f"{mib(s.memory_before.rss_kib)} before, "
                         f"{mib(s.memory_held.rss_kib)} held ({s.memory_held.scope})"),
        ]  # fmt: skip
    rows.append(("CPU busy before", _busy(idle.busy_before)))
    return rows


def render_text(result: HostileResult) -> str:
    parts = [
        f"Hostile input (issue 10): {os.cpu_count()} CPUs, {platform.platform()}, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(result.started_at))}\n"
    ]
    for title, rows in (
        ("big: parallel large messages", _big_rows(result.big) if result.big else None),
        ("header: a folded header vs the banner", _header_rows(result.header)
         if result.header else None),
        ("idle: idle strangers vs a connected server", _idle_rows(result.idle)
         if result.idle else None),
    ):  # fmt: skip
        if rows is not None:
            parts.append(f"\n{title}\n" + "".join(f"  {n:<22}{v}\n" for n, v in rows))
    found = findings(result)
    parts.append("\nfindings\n" + "".join(f"  - {f}\n" for f in found) if found else
                 "\nfindings: none (every target met)\n")  # fmt: skip
    return "".join(parts)


def render_json(result: HostileResult) -> dict[str, Any]:
    o = result.options
    return {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "started_at": result.started_at,
        "options": {
            "only": list(o.only),
            "senders": o.senders,
            "size": o.size,
            "sample_interval_s": o.sample_interval,
            "header_size": o.header_size,
            "header_source": o.header_source,
            "probe_interval_s": o.probe_interval,
            "strangers": o.strangers,
            "stranger_sources": list(o.stranger_sources),
            "server": o.server,
            "hold_s": o.hold,
            "timeout_s": o.timeout,
            "workers": o.workers,
            "ugem_overrides": o.ugem_overrides,
        },
        "big": result.big.to_json() if result.big else None,
        "header": result.header.to_json() if result.header else None,
        "idle": result.idle.to_json() if result.idle else None,
        "findings": findings(result),
    }
