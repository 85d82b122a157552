"""A traffic series drawn against its baseline band, as an SVG the server writes.

`svg(series, band, title, summary, name)` draws equally spaced values (messages per
bucket, say per hour of the last day) as a line over the band of what is
usual for those buckets (low, high per bucket: the detector's learned
baseline), on a scale from 0 to the highest value or band edge. It promises
an accessible image: `role="img"` labelled by its `<title>` and described by
its `<desc>` (`summary`, e.g. "412 messages in the last hour, usual 20 to
60"), every text escaped; classes (`chart-band`, `chart-line`) instead of
inline styles (the console's CSP allows none); `name` (default "chart")
prefixes the ids of its title and description, so that a page can hold
several charts with ids of their own. Pure and deterministic; a
series and a band of different lengths, an empty series or a negative or
non-finite value raise `ValueError` naming it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT, PAD = 600, 160, 4


def _check(series: Sequence[float], band: Sequence[tuple[float, float]]) -> None:
    if not series:
        raise ValueError("series: empty; a chart needs at least one value")
    if len(band) != len(series):
        raise ValueError(f"band: {len(band)} buckets for {len(series)} values of the series")
    for value in [*series, *(edge for pair in band for edge in pair)]:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{value!r} is not a count; expected a finite number >= 0")


def _points(values: Sequence[float], top: float) -> list[tuple[float, float]]:
    step = (WIDTH - 2 * PAD) / max(1, len(values) - 1)
    high = HEIGHT - 2 * PAD
    return [(PAD + i * step, PAD + high - high * v / top) for i, v in enumerate(values)]


def _path(points: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


def svg(
    series: Sequence[float],
    band: Sequence[tuple[float, float]],
    title: str,
    summary: str,
    name: str = "chart",
) -> str:
    _check(series, band)
    top = max([*series, *(high for _, high in band), 1.0])
    upper = _points([high for _, high in band], top)
    lower = _points([low for low, _ in band], top)
    line = _points(series, top)
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{name}-title {name}-desc" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{name}-title">{escape(title)}</title>'
        f'<desc id="{name}-desc">{escape(summary)}</desc>'
        f'<polygon class="chart-band" points="{_path(upper + lower[::-1])}"/>'
        f'<polyline class="chart-line" points="{_path(line)}"/>'
        "</svg>"
    )
