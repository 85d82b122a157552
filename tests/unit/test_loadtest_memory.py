"""Resident memory from /proc: the VmRSS line, a process tree, the sum and what it covers.

A fake /proc (pid directories with `stat` and `status`) holds a supervisor
with two workers, one of which has a child, and unrelated processes; the
real /proc gives this test process's own VmRSS.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loadtest.errors import TargetError
from loadtest.memory import descendants, sample, vm_rss_kib

STATUS = "Name:\tpython3\nVmPeak:\t  300000 kB\nVmRSS:\t   {rss} kB\nThreads:\t3\n"


def _proc(root: Path, pid: int, ppid: int, rss: int | None, name: str = "ugem") -> None:
    d = root / str(pid)
    d.mkdir(parents=True)
    (d / "stat").write_text(f"{pid} ({name}) S {ppid} {pid} {pid} 0 -1 4194560 100 0\n")
    status = STATUS.format(rss=rss) if rss is not None else "Name:\tkthread\nThreads:\t1\n"
    (d / "status").write_text(status)


@pytest.fixture
def fake_proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    _proc(root, 1, 0, 9000, "init")
    _proc(root, 100, 1, 50_000, "ugem serve")  # the supervisor
    _proc(root, 101, 100, 120_000, "ugem) (worker")  # a name with a parenthesis and spaces
    _proc(root, 102, 100, 110_000)
    _proc(root, 103, 102, 4_000, "sh")  # a grandchild
    _proc(root, 104, 100, None, "kthread")  # no VmRSS: left out of the sum
    _proc(root, 200, 1, 777_000, "elsewhere")
    (root / "self").mkdir()
    (root / "meminfo").write_text("MemTotal: 1 kB\n")
    return root


def test_vm_rss_line() -> None:
    assert vm_rss_kib(STATUS.format(rss=123456)) == 123456
    assert vm_rss_kib("Name:\tx\nVmRSS:\t12 MB\n") is None  # not the kB the kernel writes
    assert vm_rss_kib("Name:\tkthread\n") is None


def test_the_tree_below_a_process(fake_proc: Path) -> None:
    assert descendants(100, fake_proc) == [101, 102, 103, 104]
    assert descendants(102, fake_proc) == [103]
    assert descendants(200, fake_proc) == []


def test_sample_sums_the_process_and_its_children(fake_proc: Path) -> None:
    supervisor = sample(100, fake_proc)
    assert supervisor.processes == {100: 50_000, 101: 120_000, 102: 110_000, 103: 4_000}
    assert supervisor.rss_kib == 284_000
    assert supervisor.scope == "the process and 3 children"
    assert supervisor.to_json()["processes"]["101"] == 120_000
    alone = sample(200, fake_proc)
    assert (alone.rss_kib, alone.scope) == (777_000, "the process alone")
    assert sample(102, fake_proc).scope == "the process and 1 child"


def test_a_missing_process_is_a_target_error(fake_proc: Path) -> None:
    with pytest.raises(TargetError, match="no VmRSS for process 999"):
        sample(999, fake_proc)
    with pytest.raises(TargetError, match="no VmRSS for process 104"):
        sample(104, fake_proc)


def test_this_process_from_the_real_proc() -> None:
    own = sample(os.getpid())
    text = Path(f"/proc/{os.getpid()}/status").read_text()
    rss = vm_rss_kib(text)
    assert rss is not None and rss > 1000  # a Python with pytest loaded holds megabytes
    assert own.pid == os.getpid()
    assert own.processes[os.getpid()] == pytest.approx(rss, rel=0.5)
