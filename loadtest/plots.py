"""The full set's curves as PNG files, drawn with matplotlib (Agg: no screen needed).

`write_plots(report, directory)` reads the JSON report of `compare --set full`
(loadtest.full_set) and writes, for what the report holds:

- `size_throughput.png`, `size_p99.png`: end-to-end rate and accept p99 against the
  message size (log scale), a line per target (`scaling.size.points`);
- `connections_throughput.png`, `connections_p99.png`: the same against the number of
  connections (`scaling.connections.points`);
- `headline.png`: a bar per entry of the headline's median end-to-end rate, with the
  range of its runs as an error bar (`headline.summary`).

It returns the paths written, in that order; a part the report lacks (or a point
without the figure, such as a p99 that was not measured) is left out, not an error.
matplotlib is imported here only, when called, so the rest of the package runs without
it (it is a dev dependency, not the gateway's); without it `write_plots` raises
TargetError saying how to install it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadtest.errors import TargetError

AXES = {  # axis of the scaling part -> (x label, log scale)
    "size": ("message size (bytes)", True),
    "connections": ("concurrent connections", True),
}
FIGURES = {  # figure key -> (file suffix, y label)
    "e2e": ("throughput", "end to end (msg/s)"),
    "p99": ("p99", "accept latency p99 (ms)"),
}


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise TargetError(
            "the plots need matplotlib: pip install -e '.[dev]' (or make venv)"
        ) from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(report: dict[str, Any], directory: Path) -> list[Path]:
    """Every plot the report has data for, as PNG files in `directory`."""
    plt = _pyplot()
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    scaling = report.get("scaling") or {}
    for axis in AXES:
        points = (scaling.get(axis) or {}).get("points") or []
        for key in FIGURES:
            path = _curve(plt, axis, key, points, directory)
            if path is not None:
                written.append(path)
    summary = (report.get("headline") or {}).get("summary") or {}
    path = _bars(plt, summary, directory / "headline.png")
    if path is not None:
        written.append(path)
    return written


def _lines(points: list[dict[str, Any]], key: str) -> dict[str, list[tuple[float, float]]]:
    """{target: [(x, figure), ...] sorted by x} for the points that have the figure."""
    lines: dict[str, list[tuple[float, float]]] = {}
    for point in points:
        if point.get(key) is not None:
            lines.setdefault(point["target"], []).append((float(point["x"]), float(point[key])))
    return {target: sorted(xy) for target, xy in lines.items()}


def _curve(
    plt: Any, axis: str, key: str, points: list[dict[str, Any]], directory: Path
) -> Path | None:
    lines = _lines(points, key)
    if not lines:
        return None
    x_label, log = AXES[axis]
    suffix, y_label = FIGURES[key]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for target, xy in lines.items():
        ax.plot([x for x, _ in xy], [y for _, y in xy], marker="o", label=target)
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(f"{y_label} by {x_label}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return _save(plt, fig, directory / f"{axis}_{suffix}.png")


def _bars(plt: Any, summary: dict[str, Any], path: Path) -> Path | None:
    rows = [(label, s["e2e"]) for label, s in summary.items() if s.get("e2e")]
    if not rows:
        return None
    medians = [e2e["median"] for _, e2e in rows]
    below = [e2e["median"] - e2e["min"] for _, e2e in rows]
    above = [e2e["max"] - e2e["median"] for _, e2e in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.bar([label for label, _ in rows], medians, yerr=[below, above], capsize=6)
    ax.set_ylabel("end to end (msg/s), median and range")
    n = max(e2e["n"] for _, e2e in rows)
    ax.set_title(f"Headline: medians of {n} alternating runs")
    ax.grid(True, axis="y", alpha=0.3)
    return _save(plt, fig, path)


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
