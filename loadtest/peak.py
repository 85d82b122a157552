"""The peak resident memory of a process tree while something runs, sampled in a thread.

`PeakSampler(pid, interval)` reads the VmRSS of `pid` and of its descendants
(loadtest.memory) every `interval` seconds from `start()` to `stop()`, in a
thread of its own so that a busy event loop does not delay the samples. The
tree (which pids descend from `pid`) is read again every `TREE_REFRESH`
seconds; between those, only the known pids' /proc/PID/status are read (a
few hundred microseconds rather than a scan of /proc). `stop()` returns an
`RssTrace`: the first sample, the highest and when it was taken, the last,
how many samples there were, and the timeline: the highest sum in each
second from the first sample (`TIMELINE_STEP`). If the process goes away meanwhile, the
trace keeps what was read before and says so (`lost`); `stop()` never
raises for it. A sum of RSS counts pages that forked workers share once per
process, so for a tree it is an upper bound (see loadtest.memory).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.errors import TargetError
from loadtest.memory import PROC, MemorySample, descendants, vm_rss_kib

TREE_REFRESH = 1.0  # seconds between two scans of /proc for the tree's pids
TIMELINE_STEP = 1.0  # seconds of one step of the timeline


@dataclass(frozen=True)
class RssTrace:
    interval: float
    samples: int
    first: MemorySample
    peak: MemorySample
    peak_at: float  # seconds from the first sample
    last: MemorySample
    lost: bool = False  # the process went away before the end
    timeline: tuple[int, ...] = ()  # KiB: the highest sum in each TIMELINE_STEP

    def steps(self, seconds: float) -> list[int]:
        """The timeline in steps of `seconds` (a multiple of TIMELINE_STEP): each one's peak."""
        width = max(1, round(seconds / TIMELINE_STEP))
        return [max(self.timeline[i : i + width]) for i in range(0, len(self.timeline), width)]

    @property
    def growth_kib(self) -> int:
        """Peak over the first sample."""
        return self.peak.rss_kib - self.first.rss_kib

    def to_json(self) -> dict[str, Any]:
        return {
            "interval_s": self.interval,
            "samples": self.samples,
            "first": self.first.to_json(),
            "peak": self.peak.to_json(),
            "peak_at_s": self.peak_at,
            "last": self.last.to_json(),
            "growth_kib": self.growth_kib,
            "lost": self.lost,
            "timeline_step_s": TIMELINE_STEP,
            "timeline_kib": list(self.timeline),
        }


def read_tree(pid: int, pids: list[int], proc: Path = PROC) -> MemorySample | None:
    """VmRSS of `pid` and of `pids` (its descendants); None when `pid` has none.

    A descendant that is gone (or has no VmRSS) is left out.
    """
    processes: dict[int, int] = {}
    for each in (pid, *pids):
        try:
            kib = vm_rss_kib((proc / str(each) / "status").read_text())
        except OSError:
            kib = None
        if kib is None and each == pid:
            return None
        if kib is not None:
            processes[each] = kib
    return MemorySample(pid, processes)


class PeakSampler:
    """Samples a process tree's VmRSS in a thread; see the module docstring."""

    def __init__(
        self,
        pid: int,
        interval: float,
        proc: Path = PROC,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pid = pid
        self.interval = interval
        self.proc = proc
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._first: MemorySample | None = None
        self._peak: MemorySample | None = None
        self._last: MemorySample | None = None
        self._started = 0.0
        self._peak_at = 0.0
        self._samples = 0
        self._lost = False
        self._tree: list[int] = []
        self._tree_read = 0.0
        self._timeline: list[int] = []

    def start(self) -> None:
        """Take the first sample now (TargetError if the process is not there), then go on."""
        self._started = self.clock()
        self._tree = descendants(self.pid, self.proc)
        self._tree_read = self._started
        first = read_tree(self.pid, self._tree, self.proc)
        if first is None:
            raise TargetError(f"no VmRSS for process {self.pid} in {self.proc}")
        self.record(first, self._started)
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def record(self, sample: MemorySample, at: float) -> None:
        """Count one sample taken at clock time `at`."""
        self._samples += 1
        if self._first is None:
            self._first = sample
        if self._peak is None or sample.rss_kib > self._peak.rss_kib:
            self._peak, self._peak_at = sample, at - self._started
        self._last = sample
        step = max(0, int((at - self._started) / TIMELINE_STEP))
        while len(self._timeline) <= step:
            self._timeline.append(0)
        self._timeline[step] = max(self._timeline[step], sample.rss_kib)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            now = self.clock()
            if now - self._tree_read >= TREE_REFRESH:
                self._tree = descendants(self.pid, self.proc)
                self._tree_read = now
            sample = read_tree(self.pid, self._tree, self.proc)
            if sample is None:
                self._lost = True
                return
            self.record(sample, now)

    def stop(self) -> RssTrace:
        """End the sampling (one last sample first); the trace."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self._lost:
            last = read_tree(self.pid, self._tree, self.proc)
            if last is None:
                self._lost = True
            else:
                self.record(last, self.clock())
        return self.trace()

    def trace(self) -> RssTrace:
        if self._first is None or self._peak is None or self._last is None:
            raise TargetError("the memory sampler took no sample")
        return RssTrace(
            self.interval, self._samples, self._first, self._peak, self._peak_at, self._last,
            self._lost, tuple(self._timeline),
        )  # fmt: skip
