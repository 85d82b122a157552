"""`compare --set full`: issue 17's whole side-by-side set with one command, one JSON report
and the plots.

`run_full(options, log)` runs, in one work directory, the parts of `options.parts`:

- **headline**: Postfix's smtp-source → relay → smtp-sink, `connections` sessions of one
  message each, `size` bytes, `messages` messages, through Postfix, Haraka, the gateway
  (`ugem`), the gateway with two workers (`ugem-2w`) and the gateway signing every
  message with an RSA-2048 DKIM key (`ugem-dkim`: `ugem dkim keygen` of the senders'
  domain into a key directory of the work directory, given as `dkim.key_dir`), all in
  the same `repeat` alternating rounds (loadtest.rounds);
- **tail**: the Python driver and sink (accept latencies), `connections` connections of
  100 messages, Postfix and the gateway at full speed, then paced (`--rate`) at
  `paced_share` of Postfix's headline median end-to-end rate (p50, p99, p99/p50);
- **scaling**: Postfix and the gateway, one run each per point, Python driver and sink:
  the message size (`sizes`: bytes → messages, fewer for larger ones) at `connections`
  connections, and the number of connections (`connection_counts`: connections →
  messages) at 2 KB; the gateway's `max_connections` and `max_connections_per_ip` and
  Postfix's `default_process_limit` are raised to the connections, so none is refused;
- **queue**: loadtest.restart over `queue_messages` queued messages (restart to first
  delivery, memory).

Every part reuses loadtest.compare's runs (a fresh target and sink per run, stopped on
errors too). After each part the JSON report so far is written to `options.out`, and at
the end the plots (loadtest.plots) beside it; `render_text(result)` is the text report.
Progress goes to `log` (stderr), a line per part and per run. A failing run raises
(TargetError), after the report of the parts already done was written.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from loadtest import compare, plots, restart, rounds
from loadtest.compare import DOMAIN, SENDER_DOMAIN, CompareOptions
from loadtest.content import SizeDist
from loadtest.gateway import GatewayInstance
from loadtest.rate import parse_rate
from loadtest.rounds import Entry, Rounds

PARTS = ("headline", "tail", "scaling", "queue")
SIZES = {1024: 3000, 10 * 1024: 2000, 100 * 1024: 600, 1024 * 1024: 100}  # bytes -> messages
CONNECTIONS = {1: 1000, 10: 2000, 50: 3000, 200: 3000, 500: 3000}  # connections -> messages
POINT_KEYS = ("e2e", "accept_rate", "p50", "p99")
HEADLINE = ("postfix", "haraka", "ugem", "ugem-2w", "ugem-dkim")


@dataclass(frozen=True)
class FullOptions:
    out: Path = Path("var/bench/full/report.json")
    parts: tuple[str, ...] = PARTS
    repeat: int = 5
    messages: int = 6000
    connections: int = 50
    size: int = 2048
    tail_messages: int = 6000
    paced_share: float = 0.7
    sizes: dict[int, int] = field(default_factory=lambda: dict(SIZES))
    connection_counts: dict[int, int] = field(default_factory=lambda: dict(CONNECTIONS))
    queue_messages: int = 100_000
    settle: float = 5.0  # wait at most this long for a quiet second before each run
    stall: float = 30.0
    ugem_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    postfix_overrides: dict[str, str] = field(default_factory=dict)
    haraka_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    workdir: Path | None = None
    keep: bool = False


@dataclass
class FullResult:
    options: FullOptions
    started_at: float
    parts: dict[str, Any] = field(default_factory=dict)  # part -> its JSON
    texts: dict[str, str] = field(default_factory=dict)  # part -> its text
    plots: list[Path] = field(default_factory=list)
    finished_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        end = self.finished_at or time.time()
        return {
            "set": "full",
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": end - self.started_at,
            **self.parts,
            "plots": [str(path) for path in self.plots],
        }


def base(options: FullOptions) -> CompareOptions:
    """What every comparison of the set shares (the Python driver and sink)."""
    return CompareOptions(
        messages=options.messages, connections=options.connections,
        size=SizeDist("fixed", options.size), stall=options.stall, settle=options.settle,
        ugem_overrides=options.ugem_overrides, postfix_overrides=options.postfix_overrides,
        haraka_overrides=options.haraka_overrides, keep=True,
    )  # fmt: skip


async def run_full(options: FullOptions, log: TextIO = sys.stderr) -> FullResult:
    """The parts chosen, in order; see the module docstring."""
    result = FullResult(options, time.time())
    whole = replace(base(options), only=_targets(options), workdir=options.workdir,
                    keep=options.keep)  # fmt: skip
    c_tools = "headline" in options.parts  # its ends are smtp-source and smtp-sink
    await compare.prepare(
        replace(whole, driver="smtp-source", sink="smtp-sink") if c_tools else whole
    )
    steps: dict[str, Callable[[Path, TextIO], Awaitable[tuple[Any, str]]]] = {
        "headline": lambda work, out: _headline(options, work, out),
        "tail": lambda work, out: _tail(options, result, work, out),
        "scaling": lambda work, out: _scaling(options, work, out),
        "queue": lambda work, out: _queue(options, work, out),
    }
    with compare.workdir(whole, "loadtest-full-") as work:
        for part in options.parts:
            log.write(f"== {part} ({time.time() - result.started_at:.0f} s into the set)\n")
            result.parts[part], result.texts[part] = await steps[part](work / part, log)
            write_report(result)
    result.finished_at = time.time()
    result.plots = plots.write_plots(result.to_json(), options.out.parent)
    write_report(result)
    return result


def _targets(options: FullOptions) -> tuple[str, ...]:
    if "headline" in options.parts:
        return compare.TARGETS
    return ("postfix", "ugem") if {"tail", "scaling"} & set(options.parts) else ("ugem",)


def write_report(result: FullResult) -> None:
    result.options.out.parent.mkdir(parents=True, exist_ok=True)
    result.options.out.write_text(json.dumps(result.to_json(), indent=2) + "\n")


# -- headline ---------------------------------------------------------------------------


def dkim_keys(work: Path) -> Path:
    """A key directory holding an RSA-2048 key of the senders' domain (`ugem dkim keygen`,
    unless the directory has one already)."""
    keys = work / "dkim-keys"
    work.mkdir(parents=True, exist_ok=True)
    overrides = {"dkim": {"key_dir": json.dumps(str(keys))}}
    keygen = GatewayInstance(
        work / "dkim", 1, 2, DOMAIN, ("127.0.0.1", 1), (), SENDER_DOMAIN, overrides=overrides
    )
    if not (keys / SENDER_DOMAIN).exists():  # a kept work directory has one already
        keygen.write()
        keygen.cli("dkim", "keygen", SENDER_DOMAIN)
    return keys


def headline_entries(options: FullOptions, keys: Path) -> list[Entry]:
    shape = replace(base(options), per_connection=1, driver="smtp-source", sink="smtp-sink")
    signing = options.ugem_overrides | {"dkim": {"key_dir": json.dumps(str(keys))}}
    variants = {
        "postfix": ("postfix", shape),
        "haraka": ("haraka", shape),
        "ugem": ("ugem", shape),
        "ugem-2w": ("ugem", replace(shape, workers=2)),
        "ugem-dkim": ("ugem", replace(shape, ugem_overrides=signing)),
    }
    return [
        Entry(label, *variants[label], tag="DKIM RSA-2048" if label == "ugem-dkim" else "")
        for label in HEADLINE
    ]


async def _headline(options: FullOptions, work: Path, log: TextIO) -> tuple[Any, str]:
    entries = headline_entries(options, await asyncio.to_thread(dkim_keys, work))
    done = await rounds.run_rounds(entries, options.repeat, work, log)
    return rounds.render_json(done), rounds.render_text(done)


# -- tail -------------------------------------------------------------------------------


async def _tail(
    options: FullOptions, result: FullResult, work: Path, log: TextIO
) -> tuple[Any, str]:
    shape = replace(base(options), messages=options.tail_messages, only=("postfix", "ugem"))
    full = await rounds.run_rounds(rounds.entries_of(shape), 1, work / "full", log)
    rate = options.paced_share * _postfix_median(result, full)
    paced_shape = replace(shape, rate=parse_rate(f"{rate:.0f}"))
    paced = await rounds.run_rounds(rounds.entries_of(paced_shape), 1, work / "paced", log)
    title = (
        f"paced at {rate:.0f} msg/s: {options.paced_share:.0%} of Postfix's headline median "
        "end to end"
    )
    text = (
        f"-- full speed\n{rounds.render_text(full)}{_spread_ratio(full)}"
        f"-- {title}\n{rounds.render_text(paced)}{_spread_ratio(paced)}"
    )
    data = {"full_speed": rounds.render_json(full), "paced": rounds.render_json(paced)}
    return data | {"rate": rate, "paced_share": options.paced_share}, text


def _postfix_median(result: FullResult, fallback: Rounds) -> float:
    """Postfix's headline median end to end; without a headline, this part's own run."""
    summary = (result.parts.get("headline") or {}).get("summary") or {}
    e2e = (summary.get("postfix") or {}).get("e2e")
    if e2e:
        return float(e2e["median"])
    spread = fallback.spread("postfix", "e2e")
    return spread.median if spread else 100.0


def _spread_ratio(done: Rounds) -> str:
    """p99 / p50 of each entry's medians, the tail's width."""
    cells = []
    for label in done.labels:
        p50, p99 = done.spread(label, "p50"), done.spread(label, "p99")
        ratio = compare.divide(p99.median if p99 else None, p50.median if p50 else None)
        cells.append(f"{label} {compare.fmt(ratio, '{:.2f}')}")
    return f"p99 / p50: {', '.join(cells)}\n"


# -- scaling ----------------------------------------------------------------------------


def size_point(options: FullOptions, size: int, messages: int) -> CompareOptions:
    return replace(
        base(options), only=("postfix", "ugem"), messages=messages, size=SizeDist("fixed", size)
    )


def connections_point(options: FullOptions, connections: int, messages: int) -> CompareOptions:
    """`connections` at 2 KB, with the caps of both relays raised so none is refused."""
    ugem = {section: dict(keys) for section, keys in options.ugem_overrides.items()}
    smtp = ugem.setdefault("smtp", {})
    smtp.setdefault("max_connections", str(max(2000, 2 * connections)))
    smtp.setdefault("max_connections_per_ip", str(max(100, connections)))
    postfix = {"default_process_limit": str(max(200, connections))} | options.postfix_overrides
    return replace(
        base(options), only=("postfix", "ugem"), messages=messages, connections=connections,
        size=SizeDist("fixed", 2048), ugem_overrides=ugem, postfix_overrides=postfix,
    )  # fmt: skip


async def _scaling(options: FullOptions, work: Path, log: TextIO) -> tuple[Any, str]:
    axes = {
        "size": [(s, size_point(options, s, n)) for s, n in options.sizes.items()],
        "connections": [
            (c, connections_point(options, c, n)) for c, n in options.connection_counts.items()
        ],
    }
    data: dict[str, Any] = {}
    for axis, points in axes.items():
        found: list[dict[str, Any]] = []
        for x, shape in points:
            log.write(f"-- {axis} {x}: {shape.messages} messages\n")
            done = await rounds.run_rounds(rounds.entries_of(shape), 1, work / f"{axis}-{x}", log)
            found += _points(done, x, shape.messages)
        data[axis] = {"points": found}
    return data, "".join(_scaling_table(axis, part["points"]) for axis, part in data.items())


def _points(done: Rounds, x: int, messages: int) -> list[dict[str, Any]]:
    points = []
    for label in done.labels:
        run = done.runs[label][0]
        figures = compare.figures(run)
        point = {"x": x, "target": label, "messages": messages, "lost": run.sink.get("lost")}
        points.append(point | {key: figures[key] for key in POINT_KEYS})
    return points


def _scaling_table(axis: str, points: list[dict[str, Any]]) -> str:
    targets = sorted({p["target"] for p in points})
    head = ["messages"] + [f"{t} {what}" for what in ("e2e", "p99 ms") for t in targets]
    lines = [f"-- by {axis}", f"{axis:>12}" + "".join(f"{h:>16}" for h in head)]
    for x in sorted({p["x"] for p in points}):
        row = {p["target"]: p for p in points if p["x"] == x}
        cells = [str(next(iter(row.values()))["messages"])]
        cells += [compare.fmt(row[t]["e2e"]) if t in row else "-" for t in targets]
        cells += [compare.fmt(row[t]["p99"]) if t in row else "-" for t in targets]
        lines.append(f"{x:>12}" + "".join(f"{c:>16}" for c in cells))
    return "\n".join(lines) + "\n"


# -- queue ------------------------------------------------------------------------------


async def _queue(options: FullOptions, work: Path, log: TextIO) -> tuple[Any, str]:
    run = restart.RestartOptions(
        messages=options.queue_messages, connections=options.connections,
        stall=options.stall, ugem_overrides=options.ugem_overrides, workdir=work, keep=True,
    )  # fmt: skip
    done = await restart.restart(run, log)
    return restart.render_json(done), restart.render_text(done)


# -- the report -------------------------------------------------------------------------

TITLES = {
    "headline": "Headline: smtp-source -> relay -> smtp-sink, one message per session",
    "tail": "Tail latency: the Python driver and sink",
    "scaling": "Scaling: Postfix and the gateway, one run per point (Python driver and sink)",
    "queue": "The queue: a restart over the queued messages",
}


def render_text(result: FullResult) -> str:
    sections = [f"== {TITLES[part]}\n{text}" for part, text in result.texts.items()]
    data = result.to_json()
    sections.append(
        f"Plots: {', '.join(str(p) for p in result.plots) or 'none'}\n"
        f"Report: {result.options.out}\nDuration: {data['duration_s']:.0f} s\n"
    )
    return "\n".join(sections)
