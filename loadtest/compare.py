"""Side by side: the same load through a private Postfix, a private Haraka and the gateway.

`compare(options)` measures each target in `options.only` (of `TARGETS`:
postfix, haraka, ugem; by default postfix and ugem), one after the other in
that order, each in its own directory under one work directory
with a fresh sink process: start the sink, start the target relaying the
test domain to it, drive the load, wait until every accepted message arrived
(or nothing arrived for `stall` seconds), count loss (and duplicates, when
both ends are the Python ones), stop the target and the sink — stopped even
when something fails. The driver (`options.driver`: the Python generator or
Postfix's smtp-source) and the sink (`options.sink`: the Python sink or
Postfix's smtp-sink) are chosen in loadtest.harness; with smtp-source the
gateway also takes 127.0.0.1 as the sender's server, and at least
`connections` sessions from it. The end-to-end rate is messages
arrived per second from the first sent to the last arrived. Before each run
it waits (at most `settle` s) for a second with at most `quiet_cpu` of the
CPUs busy, and reports the share measured: on a shared machine a busy
neighbour skews the figures.

`render_text(result)` prints the tools, each target's rates and accept
latencies (none with smtp-source), the ratios (gateway / each peer measured)
and each target's note (Haraka's: what its queue fsyncs before the 250);
`render_json(result)` the same as plain JSON, with the settings each target
was given (the files written, by name).
Everything listens on loopback; the work directory is removed at the end
unless `keep` is set. `prepare`, `workdir` and `measure` (one run of one target) are
the pieces loadtest.rounds and loadtest.full_set build their repeated runs from.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from loadtest import haraka, harness, postfix
from loadtest.content import SizeDist
from loadtest.errors import TargetError, UsageError
from loadtest.gateway import GatewayInstance
from loadtest.generator import run_header
from loadtest.harness import ArrivalSink
from loadtest.ports import free_port
from loadtest.rate import RateSchedule
from loadtest.report import Report

TARGETS = ("postfix", "haraka", "ugem")  # measured in this order
DEFAULT_ONLY = ("postfix", "ugem")
PEERS = ("postfix", "haraka")  # the gateway's figures are divided by each of these
DOMAIN = "example.org"
SENDER_DOMAIN = "mdai.gov.kz"
DEFAULT_SOURCES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
PER_IP_DEFAULT = 100  # the gateway's default [smtp] max_connections_per_ip
TOOLS = {
    "python": "the Python generator (EHLO, PIPELINING, an id per message)",
    "smtp-source": "Postfix's smtp-source (HELO, no PIPELINING, from 127.0.0.1, "
    "no accept latencies)",
}
CHECKED = {True: "loss and duplicates by id", False: "loss by number, duplicates not checked"}
SINK_TOOLS = {
    "python": "the Python sink (reads the ids)",
    "smtp-sink": "Postfix's smtp-sink (counts messages, reads no ids)",
}


def parse_only(text: str) -> tuple[str, ...]:
    """`haraka,ugem` → the targets named, in TARGETS order; UsageError for another name."""
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(names - set(TARGETS))
    if unknown or not names:
        what = f"unknown target {', '.join(unknown)}" if unknown else f"no target in {text!r}"
        raise UsageError(f"{what}: of {', '.join(TARGETS)}")
    return tuple(name for name in TARGETS if name in names)


@dataclass(frozen=True)
class CompareOptions:
    messages: int = 10_000
    connections: int = 50
    per_connection: int = 100
    size: SizeDist = SizeDist("fixed", 2048)
    sources: tuple[str, ...] = DEFAULT_SOURCES
    only: tuple[str, ...] = DEFAULT_ONLY
    workers: int | None = None
    rate: RateSchedule | None = None  # None: as fast as possible (the throughput runs)
    stall: float = 30.0
    timeout: float = 60.0
    quiet_cpu: float = 0.25  # before each run, wait for a second with at most this CPU busy
    settle: float = 30.0  # ... but no longer than this
    ugem_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    postfix_overrides: dict[str, str] = field(default_factory=dict)
    haraka_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    workdir: Path | None = None
    keep: bool = False
    driver: str = "python"  # or "smtp-source" (loadtest.harness)
    sink: str = "python"  # or "smtp-sink"

    def check(self) -> None:
        harness.check(self.driver, self.sink, self, self.rate)

    @property
    def ids_checked(self) -> bool:
        return harness.ids_checked(self.driver, self.sink)


@dataclass(frozen=True)
class Measurement:
    name: str
    version: str
    report: Report
    sink: dict[str, Any]
    busy_before: float | None = None  # share of all CPUs busy in the second before the run
    driver_exit: int | None = None  # smtp-source's exit status; None for the Python driver
    settings: dict[str, str] = field(default_factory=dict)  # file name -> text written
    note: str | None = None  # said beside its figures (Haraka: what its queue fsyncs)

    @property
    def end_to_end_rate(self) -> float | None:
        last = self.sink.get("last_arrival")
        if not last or last <= self.report.started_at:
            return None
        return float(self.sink["messages"]) / (float(last) - self.report.started_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "busy_before": self.busy_before,
            "driver_exit": self.driver_exit,
            "end_to_end_rate": self.end_to_end_rate,
            "report": self.report.to_json(),
            "sink": self.sink,
            "note": self.note,
            "settings": self.settings,
        }


class Instance(Protocol):
    """A relay the comparison starts and stops: Postfix, Haraka or the gateway."""

    async def start(self) -> None: ...
    async def stop(self) -> object: ...


@dataclass(frozen=True)
class Target:
    instance: Instance
    version: str
    settings: dict[str, str]
    note: str | None = None


@dataclass(frozen=True)
class Comparison:
    options: CompareOptions
    measurements: list[Measurement]

    def get(self, name: str) -> Measurement | None:
        return next((m for m in self.measurements if m.name == name), None)


async def compare(options: CompareOptions, log: TextIO = sys.stderr) -> Comparison:
    """Measure each target in turn; see the module docstring."""
    await prepare(options)
    with workdir(options) as work:
        names = [name for name in TARGETS if name in options.only]
        measured = [await measure(name, options, work / name, log) for name in names]
    return Comparison(options, measured)


async def prepare(options: CompareOptions) -> None:
    """Check the options and that every target in `options.only` and tool chosen can run
    (installing Postfix or Haraka when missing); UsageError or TargetError when not."""
    options.check()
    harness.require_tools(options.driver, options.sink)
    if "postfix" in options.only:
        if os.geteuid() != 0:
            raise TargetError(
                "Postfix's master starts as root only: run as root, or --only without postfix"
            )
        postfix.ensure_installed()
    if "haraka" in options.only:
        await asyncio.to_thread(haraka.ensure_installed)


@contextlib.contextmanager
def workdir(options: CompareOptions, prefix: str = "loadtest-compare-") -> Iterator[Path]:
    """The work directory (`options.workdir` or a new temporary one), removed at the end
    unless `options.keep`."""
    work = options.workdir or Path(tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)  # Postfix's queue lives below it and runs as the postfix user
    try:
        yield work
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)


async def measure(name: str, options: CompareOptions, base: Path, log: TextIO) -> Measurement:
    """One run of the load through target `name` (with a sink of its own) under `base`."""
    sink = await harness.start_sink(options.sink, base)
    try:
        return await _through(name, options, base, sink, log)
    finally:
        await sink.stop()


async def _through(
    name: str, options: CompareOptions, base: Path, sink: ArrivalSink, log: TextIO
) -> Measurement:
    port = free_port()
    target = _target(name, options, base, port, sink.smtp)
    try:
        log.write(f"{name}: starting on 127.0.0.1:{port}, sink on port {sink.smtp[1]}\n")
        await target.instance.start()
        log.write(f"{name}: sending {options.messages} messages with {options.driver}\n")
        busy_before = await settle(options.quiet_cpu, options.settle)
        driven = await harness.drive(options.driver, options, port, name, options.rate, log)
        log.write(f"{name}: accepted {driven.report.accepted}, waiting for {options.sink}\n")
        stats = await harness.arrivals(sink, driven, options.ids_checked, options.stall)
        return Measurement(
            name, target.version, driven.report, stats, busy_before, driven.exit_status,
            target.settings, target.note,
        )  # fmt: skip
    finally:
        await target.instance.stop()


async def settle(quiet: float, longest: float) -> float | None:
    """Wait (up to `longest` s) for a second with at most `quiet` of the CPUs busy.

    The busy share of the last second measured (None off Linux).
    """
    deadline = time.monotonic() + longest
    busy = await cpu_busy(1.0)
    while busy is not None and busy > quiet and time.monotonic() < deadline:
        busy = await cpu_busy(1.0)
    return busy


async def cpu_busy(seconds: float) -> float | None:
    """Share of all CPUs' time not idle over the next `seconds` (None off Linux)."""
    first = _cpu_times()
    await asyncio.sleep(seconds)
    second = _cpu_times()
    if first is None or second is None or second[1] <= first[1]:
        return None
    return 1.0 - (second[0] - first[0]) / (second[1] - first[1])


def _cpu_times() -> tuple[int, int] | None:
    """(idle + iowait, total) jiffies of all CPUs from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + fields[4], sum(fields[:8])


def _target(
    name: str, options: CompareOptions, base: Path, port: int, sink: tuple[str, int]
) -> Target:
    if name == "postfix":
        instance = postfix.PostfixInstance(
            base / "postfix", port, DOMAIN, sink, options.postfix_overrides
        )
        instance.write()
        instance.check()
        return Target(instance, f"Postfix {postfix.version()}", instance.files())
    if name == "haraka":
        return _haraka(options, base, port, sink)
    gateway = GatewayInstance(
        base / "ugem", port, free_port(), DOMAIN, sink,
        harness.gateway_sources(options.driver, options.sources), SENDER_DOMAIN,
        options.workers, _gateway_overrides(options),
    )  # fmt: skip
    workers = f", {options.workers} workers" if options.workers else ""
    return Target(gateway, f"UGEM{workers}", {gateway.config_path.name: gateway.text()})


def _haraka(options: CompareOptions, base: Path, port: int, sink: tuple[str, int]) -> Target:
    """Haraka: one process, or as many workers as the gateway's (`nodes`)."""
    nodes = options.workers or 0
    instance = haraka.HarakaInstance(
        base / "haraka", port, DOMAIN, sink, options.haraka_overrides, nodes
    )
    instance.write()
    workers = f", {nodes} nodes" if nodes else ""
    return Target(
        instance, f"Haraka {haraka.version()}{workers}", instance.files(), haraka.DURABILITY
    )


def _gateway_overrides(options: CompareOptions) -> dict[str, dict[str, str]]:
    """The settings given; with smtp-source (every session from one address) room for
    `connections` sessions from it, unless a setting says otherwise."""
    overrides = {section: dict(keys) for section, keys in options.ugem_overrides.items()}
    if options.driver == "smtp-source" and options.connections > PER_IP_DEFAULT:
        smtp = overrides.setdefault("smtp", {})
        smtp.setdefault("max_connections_per_ip", str(options.connections))
    return overrides


ROWS: list[tuple[str, str]] = [
    ("end to end (msg/s)", "e2e"),
    ("accept rate (msg/s)", "accept_rate"),
    ("accept p50 (ms)", "p50"),
    ("accept p90 (ms)", "p90"),
    ("accept p99 (ms)", "p99"),
    ("accept max (ms)", "max"),
]


def figures(m: Measurement) -> dict[str, float | None]:
    lat = m.report.latency
    return {
        "e2e": m.end_to_end_rate,
        "accept_rate": m.report.accept_rate,
        "p50": lat.p50,
        "p90": lat.p90,
        "p99": lat.p99,
        "max": lat.max,
    }


def ratios(comparison: Comparison, peer: str = "postfix") -> dict[str, float | None]:
    """Gateway figure / `peer`'s figure for each row; {} when either was not measured."""
    other, gw = comparison.get(peer), comparison.get("ugem")
    if other is None or gw is None:
        return {}
    a, b = figures(other), figures(gw)
    return {key: divide(b[key], a[key]) for key in a}


def _all_ratios(comparison: Comparison) -> dict[str, dict[str, float | None]]:
    """{"ugem / PEER": ratios} for each peer measured beside the gateway."""
    found = {f"ugem / {peer}": ratios(comparison, peer) for peer in PEERS}
    return {label: ratio for label, ratio in found.items() if ratio}


def divide(top: float | None, bottom: float | None) -> float | None:
    return top / bottom if top is not None and bottom else None


def headline(opts: CompareOptions) -> str:
    """The report's first lines: the load, the tools at both ends, how loss is counted."""
    return (
        f"Same load through each relay: {opts.messages} messages of {opts.size.describe()} "
        f"over {opts.connections} connections ({_per_connection(opts)}) "
        f"from {', '.join(_sources(opts))}\n"
        f"Driver: {TOOLS[opts.driver]}; sink: {SINK_TOOLS[opts.sink]}; "
        f"{CHECKED[opts.ids_checked]}\n"
    )


def render_text(comparison: Comparison) -> str:
    ms = comparison.measurements
    head = headline(comparison.options)
    found = _all_ratios(comparison)
    cols = [m.version for m in ms] + list(found)
    lines = [head, f"{'':<22}" + "".join(f"{c:>18}" for c in cols)]
    for label, key in ROWS:
        cells = [fmt(figures(m)[key]) for m in ms]
        cells += [fmt(ratio[key], "{:.2f}") for ratio in found.values()]
        lines.append(f"{label:<22}" + "".join(f"{c:>18}" for c in cells))
    for label, fn in _COUNT_ROWS:
        lines.append(f"{label:<22}" + "".join(f"{fn(m):>18}" for m in ms))
    lines += [f"{m.version}: {m.note}" for m in ms if m.note]
    return "\n".join(lines) + "\n"


def _per_connection(opts: CompareOptions) -> str:
    if opts.driver == "python":
        return f"{opts.per_connection} per connection"
    if opts.per_connection == 1:
        return "a connection per message"
    return "each connection kept until the count runs out"


def _sources(opts: CompareOptions) -> tuple[str, ...]:
    return (harness.SOURCE_ADDRESS,) if opts.driver == "smtp-source" else opts.sources


def _counts(m: Measurement) -> str:
    return f"{m.report.sent}/{m.report.accepted}"


def _arrivals(m: Measurement) -> str:
    dup = m.sink["duplicates"]
    return f"{m.sink['messages']}/{m.sink['lost']}/{'-' if dup is None else dup}"


def _bad(m: Measurement) -> str:
    return f"{sum(m.report.refused.values())}/{sum(m.report.failed.values())}"


def _busy_before(m: Measurement) -> str:
    return "-" if m.busy_before is None else f"{m.busy_before:.0%}"


def _exit(m: Measurement) -> str:
    return "-" if m.driver_exit is None else str(m.driver_exit)


_COUNT_ROWS = [
    ("sent/accepted", _counts),
    ("refused/failed", _bad),
    ("arrived/lost/dup", _arrivals),
    ("CPU busy before", _busy_before),
    ("driver exit status", _exit),
]


def fmt(value: float | None, pattern: str = "{:.1f}") -> str:
    return "-" if value is None else pattern.format(value)


def json_header(opts: CompareOptions) -> dict[str, Any]:
    """The load, the machine, the tools at both ends: the head of every JSON report."""
    header = run_header(opts, opts.workers)
    header["load"]["sources"] = list(_sources(opts))
    return {
        **header,
        "driver": opts.driver,
        "sink": opts.sink,
        "ids_checked": opts.ids_checked,
    }


def render_json(comparison: Comparison) -> dict[str, Any]:
    return {
        **json_header(comparison.options),
        "targets": {m.name: m.to_json() for m in comparison.measurements},
        "ratio": ratios(comparison),  # gateway / Postfix, as before Haraka was a peer
        "ratios": _all_ratios(comparison),
    }
