"""A small real filesystem for fault tests: a tmpfs of a few MiB, mounted for one test.

`small_disk(path, size_mb)` mounts a tmpfs at `path` and unmounts it after;
it needs root (CI and the developers' machines run as root) and skips the
test with the reason otherwise (fails it under UGEM_TEST_REQUIRE_PEERS=1).
`fill(path)` writes a filler file until the filesystem says ENOSPC, so the
next write anywhere on it fails for real.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.support.peers import missing

FILLER = "filler"


@contextlib.contextmanager
def small_disk(path: Path, size_mb: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        missing("mounting a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        missing(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(directory: Path, leave: int = 0) -> Path:
    """Fill the filesystem of `directory` with one file; `leave` bytes stay free."""
    target = directory / FILLER
    chunk = bytes(64 * 1024)
    with open(target, "ab") as out:
        try:
            while True:
                free = os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize
                if free <= leave:
                    break
                out.write(chunk[: max(1, min(len(chunk), free - leave))])
                out.flush()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return target
