"""The full set's plots: a tiny synthetic report gives the five PNG files (valid PNGs), a
report without scaling points gives only the headline's bars, and the package itself
does not import matplotlib (the gateway's runtime does not depend on it).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from loadtest.plots import write_plots

PNG = b"\x89PNG\r\n\x1a\n"


def _points(xs: list[int]) -> list[dict[str, object]]:
    return [
        {"x": x, "target": target, "e2e": 1000.0 / (i + 1) * k, "p99": None if x == 1 else 5.0 * i}
        for i, x in enumerate(xs)
        for target, k in (("postfix", 1.0), ("ugem", 2.0))
    ]


REPORT = {
    "scaling": {
        "size": {"points": _points([1024, 10240, 102400, 1048576])},
        "connections": {"points": _points([1, 10, 50, 200, 500])},
    },
    "headline": {
        "summary": {
            "postfix": {"e2e": {"median": 350.0, "min": 300.0, "max": 400.0, "n": 5}},
            "ugem": {"e2e": {"median": 700.0, "min": 600.0, "max": 900.0, "n": 5}},
            "ugem-dkim": {"e2e": None},
        }
    },
}


def test_every_plot_is_a_png(tmp_path: Path) -> None:
    written = write_plots(REPORT, tmp_path / "plots")
    assert [p.name for p in written] == [
        "size_throughput.png",
        "size_p99.png",
        "connections_throughput.png",
        "connections_p99.png",
        "headline.png",
    ]
    for path in written:
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 1000


def test_only_what_the_report_has(tmp_path: Path) -> None:
    written = write_plots({"headline": REPORT["headline"]}, tmp_path)
    assert [p.name for p in written] == ["headline.png"]
    assert write_plots({}, tmp_path / "none") == []


def test_the_package_runs_without_matplotlib() -> None:
    code = "import sys, loadtest.commands, loadtest.full_set; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
