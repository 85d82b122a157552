"""ugem.malloc: the mmap threshold is set once, so freed message buffers leave the process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ugem.malloc import fix_mmap_threshold

PROBE = textwrap.dedent(
    """
    import sys
    from ugem.malloc import fix_mmap_threshold

    def rss_kib():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

    if sys.argv[1] == "fixed":
        assert fix_mmap_threshold()
    block = b"z" * (25 << 20)  # freed: raises glibc's threshold unless it was fixed
    del block
    big, small = [], []
    for _ in range(10):  # 200 MB of message-sized buffers, each followed by a live object
        big.append(b"x" * (20 << 20))
        small.append(b"y" * (200 * 1024))
    del big  # on the heap, the live objects above them keep the space in the process
    print(rss_kib())
    """
)


def rss_after(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc on Linux")
def test_freed_large_buffers_are_given_back_once_the_threshold_is_fixed() -> None:
    default, fixed = rss_after("default"), rss_after("fixed")
    assert default > 150 * 1024, f"{default} KiB: the probe no longer shows glibc keeping them"
    assert fixed < 100 * 1024, f"{fixed} KiB kept after freeing 200 MB"


def test_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert fix_mmap_threshold() is False
