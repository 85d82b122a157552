"""Build the fsync fault shim (fsync_fault.c) for a node process, or skip the test
(fail it under UGEM_TEST_REQUIRE_PEERS=1: tests.support.peers).

`fsync_fault_library(tmp_path)` compiles the shim with the system C compiler
into tmp_path and returns the .so to put in LD_PRELOAD; the node's fsync()
and fdatasync() then fail with EIO while the file named by UGEM_TEST_FSYNC_FAULT
exists.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.peers import missing

SOURCE = Path(__file__).with_name("fsync_fault.c")


def fsync_fault_library(tmp_path: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        missing("no C compiler to build the fsync fault shim")
    out = tmp_path / "fsync_fault.so"
    subprocess.run(
        [cc, "-shared", "-fPIC", "-O1", "-o", str(out), str(SOURCE), "-ldl"],
        check=True,
        capture_output=True,
    )
    return out
