"""Resident memory of a process and its descendants, read from /proc (Linux).

`vm_rss_kib(status_text)` is the VmRSS of one /proc/PID/status text, in KiB.
`descendants(pid, proc)` lists the pids whose parent chain leads to `pid`
(from each /proc/N/stat's ppid), so a supervisor's workers count with it.
`sample(pid, proc)` reads both into a `MemorySample`: the VmRSS of each
process of the tree and their sum. Summing RSS counts pages the forked
workers share once per process, so for more than one process the sum is an
upper bound of what the tree holds. `proc` defaults to /proc; tests pass a
directory laid out the same way. A process that is not there (or whose
status has no VmRSS) is a `TargetError`; a descendant that exits while it is
read is left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.errors import TargetError

PROC = Path("/proc")


def vm_rss_kib(status: str) -> int | None:
    """The VmRSS line of a /proc/PID/status text, in KiB; None when there is none."""
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name == "VmRSS":
            number, _, unit = value.strip().partition(" ")
            if unit.strip().lower() != "kb" or not number.isdigit():
                return None
            return int(number)
    return None


def _ppid(stat: str) -> int | None:
    """The parent pid in a /proc/PID/stat text (the name in parentheses may hold spaces)."""
    fields = stat.rpartition(")")[2].split()
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None


def descendants(pid: int, proc: Path = PROC) -> list[int]:
    """Pids of the children of `pid`, their children and so on, in ascending order."""
    parents: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = _ppid((entry / "stat").read_text())
        except OSError:  # it exited meanwhile
            continue
        if ppid is not None:
            parents[int(entry.name)] = ppid
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return sorted(found - {pid})


def _rss(pid: int, proc: Path) -> int | None:
    try:
        return vm_rss_kib((proc / str(pid) / "status").read_text())
    except OSError:
        return None


@dataclass(frozen=True)
class MemorySample:
    pid: int
    processes: dict[int, int]  # pid -> VmRSS in KiB, the root first

    @property
    def rss_kib(self) -> int:
        return sum(self.processes.values())

    @property
    def scope(self) -> str:
        """What the sum covers: the process alone, or with its children."""
        children = len(self.processes) - 1
        if not children:
            return "the process alone"
        return f"the process and {children} child{'ren' if children > 1 else ''}"

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "rss_kib": self.rss_kib,
            "scope": self.scope,
            "processes": {str(pid): kib for pid, kib in self.processes.items()},
        }


def sample(pid: int, proc: Path = PROC) -> MemorySample:
    """VmRSS of `pid` and of each of its descendants; TargetError when `pid` has none."""
    root = _rss(pid, proc)
    if root is None:
        raise TargetError(f"no VmRSS for process {pid} in {proc / str(pid) / 'status'}")
    processes = {pid: root}
    for child in descendants(pid, proc):
        kib = _rss(child, proc)
        if kib is not None:
            processes[child] = kib
    return MemorySample(pid, processes)


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"
