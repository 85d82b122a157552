"""Repeated comparisons in alternating rounds, and their medians ("medians of 5 alternating
runs, same run as Postfix", issue 17).

An `Entry` is one thing measured: a label (`ugem`, `ugem-2w`), the target it runs
(postfix, haraka, ugem; loadtest.compare) and its own `CompareOptions`, so a variant of
the gateway (two workers, DKIM) stands beside the same Postfix runs. `run_rounds(entries,
repeat, work, log)` measures every entry once per round, round after round, in the
entries' order in odd rounds and the reverse in even ones (`round_order`): a drift of the
machine hits every entry alike. `compare_rounds(options, repeat)` does so for the targets
of `options.only` (`compare --repeat N`).

`Rounds` keeps every run; `spread(label, key)` is the median with the lowest and highest
value of a figure (loadtest.compare's `figures` keys: e2e, accept_rate, p50, p90, p99,
max) over the runs that have it (`Spread.of`: the median of an even count is the mean of
the middle two; None when no run has the figure, as accept latencies under smtp-source);
`ratios()` divides each gateway entry's medians by each peer's. `render_text` prints per
entry "median [min-max]" and the ratios of the medians, with the losses summed over
the runs and the CPU busy before each run (range); `render_json` keeps every run beside
the summary. A run that fails raises (TargetError), as a single comparison does: the
targets are stopped by loadtest.compare either way.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from loadtest import compare
from loadtest.compare import CompareOptions, Measurement

KEYS = ("e2e", "accept_rate", "p50", "p90", "p99", "max")
SHOWN = [  # the rows of the text report
    ("end to end (msg/s)", "e2e"),
    ("accept rate (msg/s)", "accept_rate"),
    ("accept p50 (ms)", "p50"),
    ("accept p99 (ms)", "p99"),
]
WIDTH = 22


@dataclass(frozen=True)
class Entry:
    label: str
    target: str  # of compare.TARGETS
    options: CompareOptions
    tag: str = ""  # added to the target's version in the reports ("DKIM RSA-2048")

    def named(self, measured: Measurement) -> Measurement:
        """`measured` under this entry's label (and tagged version)."""
        version = f"{measured.version}, {self.tag}" if self.tag else measured.version
        return replace(measured, name=self.label, version=version)


@dataclass(frozen=True)
class Spread:
    """A figure over rounds: the median, the lowest and the highest."""

    median: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Spread | None:
        got = sorted(v for v in values if v is not None)
        return cls(statistics.median(got), got[0], got[-1], len(got)) if got else None

    def to_json(self) -> dict[str, float | int]:
        return {"median": self.median, "min": self.low, "max": self.high, "n": self.count}

    def text(self, pattern: str = "{:.1f}") -> str:
        """The median, and [lowest..highest] when the rounds differ."""
        middle = pattern.format(self.median)
        if self.low == self.high:
            return middle
        return f"{middle} [{pattern.format(self.low)}..{pattern.format(self.high)}]"


def round_order(labels: Sequence[str], index: int) -> list[str]:
    """The order of round `index` (0 first): as given, then reversed, and so on."""
    return list(labels) if index % 2 == 0 else list(reversed(labels))


def entries_of(options: CompareOptions) -> list[Entry]:
    """One entry per target of `options.only`, in the comparison's order."""
    return [Entry(name, name, options) for name in compare.TARGETS if name in options.only]


@dataclass(frozen=True)
class Rounds:
    options: CompareOptions  # the load of the first entry, for the report's head
    labels: tuple[str, ...]
    orders: list[list[str]]
    runs: dict[str, list[Measurement]]  # by label, in round order

    def version(self, label: str) -> str:
        return self.runs[label][0].version if self.runs.get(label) else label

    def spread(self, label: str, key: str) -> Spread | None:
        return Spread.of(compare.figures(m)[key] for m in self.runs.get(label, []))

    def ratios(self) -> dict[str, dict[str, float | None]]:
        """{"LABEL / PEER": {key: median / median}} for each gateway entry and peer."""
        peers = [label for label in self.labels if label in compare.PEERS]
        gateways = [label for label in self.labels if label not in compare.PEERS]
        return {
            f"{top} / {peer}": {key: self._ratio(top, peer, key) for key in KEYS}
            for top in gateways
            for peer in peers
        }

    def _ratio(self, top: str, bottom: str, key: str) -> float | None:
        a, b = self.spread(top, key), self.spread(bottom, key)
        return compare.divide(a.median if a else None, b.median if b else None)


async def run_rounds(
    entries: Sequence[Entry], repeat: int, work: Path, log: TextIO = sys.stderr
) -> Rounds:
    """Every entry once per round, `repeat` rounds in alternating order (see the docstring)."""
    by_label = {entry.label: entry for entry in entries}
    labels = tuple(by_label)
    runs: dict[str, list[Measurement]] = {label: [] for label in labels}
    orders = [round_order(labels, index) for index in range(repeat)]
    for index, order in enumerate(orders, 1):
        log.write(f"round {index}/{repeat}: {', '.join(order)}\n")
        for label in order:
            entry = by_label[label]
            base = work / f"{label}-{index}"
            measured = await compare.measure(entry.target, entry.options, base, log)
            runs[label].append(entry.named(measured))
            log.write(f"{label}: end to end {compare.fmt(measured.end_to_end_rate)} msg/s\n")
    return Rounds(entries[0].options, labels, orders, runs)


async def compare_rounds(options: CompareOptions, repeat: int, log: TextIO = sys.stderr) -> Rounds:
    """`compare --repeat N`: the targets of `options.only` in `repeat` alternating rounds."""
    await compare.prepare(options)
    with compare.workdir(options) as work:
        return await run_rounds(entries_of(options), repeat, work, log)


def _lost(runs: list[Measurement]) -> str:
    return str(sum(int(m.sink.get("lost") or 0) for m in runs))


def _busy(runs: list[Measurement]) -> str:
    spread = Spread.of(m.busy_before for m in runs)
    return "-" if spread is None else f"{spread.low:.0%}-{spread.high:.0%}"


def _row(label: str, cells: Iterable[str]) -> str:
    return f"{label:<22}" + "".join(f"{cell:>{WIDTH}}" for cell in cells)


def render_text(rounds: Rounds) -> str:
    """Each entry's medians [min-max] and the ratios of the medians."""
    n = len(rounds.orders)
    found = rounds.ratios()
    order = ", ".join(rounds.labels)
    lines = [
        compare.headline(rounds.options),
        f"Medians of {n} rounds [min-max]; each round in turn: {order}, then reversed"
        if n > 1
        else f"One run each, in turn: {order}",
        _row("", [rounds.version(label) for label in rounds.labels] + list(found)),
    ]
    for title, key in SHOWN:
        cells = [_cell(rounds.spread(label, key)) for label in rounds.labels]
        cells += [compare.fmt(ratio[key], "{:.2f}") for ratio in found.values()]
        lines.append(_row(title, cells))
    lines.append(_row("lost (all runs)", [_lost(rounds.runs[lb]) for lb in rounds.labels]))
    lines.append(_row("CPU busy before", [_busy(rounds.runs[lb]) for lb in rounds.labels]))
    lines += sorted({f"{m[0].version}: {m[0].note}" for m in rounds.runs.values() if m[0].note})
    return "\n".join(lines) + "\n"


def _cell(spread: Spread | None) -> str:
    return "-" if spread is None else spread.text()


def summary(rounds: Rounds) -> dict[str, dict[str, Any]]:
    """{label: {"version": ..., key: spread as JSON or None}}."""
    result: dict[str, dict[str, Any]] = {}
    for label in rounds.labels:
        spreads = {key: rounds.spread(label, key) for key in KEYS}
        result[label] = {"version": rounds.version(label)} | {
            key: None if s is None else s.to_json() for key, s in spreads.items()
        }
    return result


def render_json(rounds: Rounds) -> dict[str, Any]:
    """The head of a comparison's report, every run of every round, the medians, the ratios."""
    return {
        **compare.json_header(rounds.options),
        "repeat": len(rounds.orders),
        "rounds": [
            {"order": order, "runs": {lb: rounds.runs[lb][i].to_json() for lb in order}}
            for i, order in enumerate(rounds.orders)
        ],
        "summary": summary(rounds),
        "ratios": rounds.ratios(),
    }
