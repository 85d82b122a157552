"""The protocol's cache of simulated traces: made on demand, reused only when they match.

What: `Cache` keeps simulated traces under a directory (`DEFAULT_CACHE` unless told)
by `cache_key`, making one with the simulator's Python API (anomaly.simulate) when it
is asked for and missing; `prepare` makes the missing traces of a run beforehand, in
up to `jobs` forked processes at once; `TraceFiles` is a trace on disk with its
labels, simulated or recorded. `quiet_gc` pauses the cycle collector around a
simulation or a replay.

Promises: a cached trace is reused only when its key and its `KEY.args.json` (the
exact simulate options with the simulator's digest) both match; that marker is
written last, so a trace is complete once it is there and one torn is made again.
Failures: a cache directory or marker that cannot be made or written, and a recorded
trace or labels file that is not there, raise UsageError.
"""

from __future__ import annotations

import contextlib
import gc
import json
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from anomaly.protocol_design import TraceRef, cache_key, simulate_args
from anomaly.simulate import SimOptions, output_paths, simulate
from ugem.core.errors import UsageError

DEFAULT_CACHE = Path("var") / "anomaly-protocol"


@dataclass(frozen=True)
class TraceFiles:
    """A trace on disk with its labels; `options` when simulated."""

    name: str
    trace: Path
    labels: Path
    options: SimOptions | None = None


class Cache:
    """Simulated traces under `root`, by `cache_key`; made when asked for and missing."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def prefix(self, options: SimOptions) -> Path:
        return self.root / cache_key(options)

    def _marker(self, options: SimOptions) -> Path:
        return Path(f"{self.prefix(options)}.args.json")

    def has(self, options: SimOptions) -> bool:
        """Whether the trace of `options` is there, complete, made with these exact options."""
        trace, labels = output_paths(self.prefix(options))
        try:
            args = json.loads(self._marker(options).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return args == simulate_args(options) and trace.is_file() and labels.is_file()

    def make(self, options: SimOptions) -> float:
        """Simulate the trace of `options` into the cache (again, if there); the seconds."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--cache: cannot make {self.root}: {exc}") from exc
        self._marker(options).unlink(missing_ok=True)
        with quiet_gc():
            summary = simulate(options, self.prefix(options))
        text = json.dumps(simulate_args(options), indent=1) + "\n"
        try:
            self._marker(options).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--cache: cannot write {self._marker(options)}: {exc}") from exc
        return summary.seconds

    def files(self, ref: TraceRef) -> TraceFiles:
        """The files of `ref`, simulated first if not in the cache."""
        if ref.recorded is not None:
            trace, labels = ref.recorded
            for path in (trace, labels):
                if not path.is_file():
                    raise UsageError(f"{ref.name}: {path} is not there")
            return TraceFiles(ref.name, trace, labels)
        if ref.options is None:
            raise UsageError(f"{ref.name}: neither simulated nor recorded")
        if not self.has(ref.options):
            self.make(ref.options)
        trace, labels = output_paths(self.prefix(ref.options))
        return TraceFiles(ref.name, trace, labels, ref.options)


def _make_in_worker(root: Path, options: SimOptions) -> float:
    return Cache(root).make(options)


def prepare(
    refs: Iterable[TraceRef],
    cache: Cache,
    jobs: int,
    progress: Callable[[str], None],
) -> float:
    """Simulate the missing traces of `refs`, `jobs` at a time; the wall seconds."""
    began = time.perf_counter()
    missing: dict[str, tuple[str, SimOptions]] = {}
    for ref in refs:
        if ref.options is not None and not cache.has(ref.options):
            missing.setdefault(cache_key(ref.options), (ref.name, ref.options))
    todo = list(missing.values())
    if not todo:
        return 0.0
    progress(f"simulating {len(todo)} traces into {cache.root}, {jobs} at a time")
    if jobs <= 1 or len(todo) == 1 or "fork" not in multiprocessing.get_all_start_methods():
        for name, options in todo:
            progress(f"  {name}: {cache.make(options):.1f} s")
    else:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(min(jobs, len(todo)), mp_context=context) as pool:
            futures = {
                pool.submit(_make_in_worker, cache.root, options): name for name, options in todo
            }
            for future in as_completed(futures):
                progress(f"  {futures[future]}: {future.result():.1f} s")
    return time.perf_counter() - began


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """Pause the cycle collector and freeze what exists: a replay or a simulation makes
    millions of small objects without cycles (as ugem.commands.anomaly does)."""
    was = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
        gc.unfreeze()
