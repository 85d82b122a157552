"""The C allocator's policy for a node: message-sized buffers go back to the system.

glibc's malloc serves a block over its mmap threshold (128 KiB at start) with
mmap, and returns it to the system when freed; but freeing such a block
raises the threshold to its size (up to 32 MiB), so after the first 25 MB
message every later one comes from the heap, where freed space stays with
the process: after 200 parallel 25 MB messages the node kept 1.7 GB
(BENCHMARKS.md, "Hostile input"). `fix_mmap_threshold()` sets the threshold
once (mallopt M_MMAP_THRESHOLD, which also turns the raising off), so a
message's buffers are always mapped and unmapped. The environment's
MALLOC_MMAP_THRESHOLD_ wins when it is set. On a C library without
mallopt (musl, macOS) it does nothing; it never raises.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
THRESHOLD = 1024 * 1024  # blocks of at least this many bytes are mmapped


def fix_mmap_threshold(threshold: int = THRESHOLD) -> bool:
    """Set glibc's mmap threshold; True when it was set here."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(ctypes.c_int(M_MMAP_THRESHOLD), ctypes.c_int(threshold)))
    return False
