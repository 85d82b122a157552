"""Space held back for a full disk: a file beside the spool, given up when the disk fills.

A delivered message must be removed from the spool before the scheduler may
forget it; on a full disk that removal fails too (SQLite's write-ahead log
needs room for it), and a node that cannot record a delivery would send the
same mail again. `Reserve` keeps `size` bytes of real blocks in
`<spool>.reserve` while there is room. When a write that frees or records
(a removal, an update, a hold) fails for want of space, the spool `spend()`s
the reserve and tries once more; from then until `restore()` succeeds, new
mail is refused (452 4.3.1) so it cannot take the room back, and readiness
says so. `restore()` makes the file again, only when the disk has room for
it twice over, so a disk at the edge does not flap.

Everything here is blocking file I/O: call it from a worker thread. It never
raises: a reserve that cannot be made is reported as absent (False).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

CHUNK = 1 << 20


class Reserve:
    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size

    @property
    def present(self) -> bool:
        try:
            return self.size > 0 and self.path.stat().st_size >= self.size
        except OSError:
            return False

    def free_space(self) -> int:
        """Bytes free on the spool's filesystem (0 when it cannot be read)."""
        try:
            return shutil.disk_usage(self.path.parent).free
        except OSError:
            return 0

    def disk_short(self) -> bool:
        """Whether the disk has less room than the reserve twice over (1 MiB at least)."""
        return self.free_space() < 2 * max(self.size, CHUNK)

    def make(self) -> bool:
        """Write the reserve file with real blocks (fsynced); False if there is no room."""
        if self.size <= 0 or self.present:
            return True
        try:
            with open(self.path, "wb") as out:
                zeros = bytes(CHUNK)
                left = self.size
                while left > 0:
                    left -= out.write(zeros[: min(CHUNK, left)])
                out.flush()
                os.fsync(out.fileno())
        except OSError:
            self.spend()
            return False
        return True

    def spend(self) -> bool:
        """Delete the reserve file; True when there was one to free."""
        had = self.present
        with contextlib.suppress(OSError):
            self.path.unlink()
        return had

    def restore(self) -> bool:
        """Make the reserve again when the disk has room for it twice over."""
        if self.present or self.size <= 0:
            return True
        return not self.disk_short() and self.make()
