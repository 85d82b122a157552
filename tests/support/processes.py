"""Stopping a child process the tests started (a redis-server, a dnsmasq).

`stop_process(process, timeout)` asks it to end (SIGTERM), waits up to
`timeout` seconds, then kills it (SIGKILL) and reaps it; one that has
exited already is left as it is. It never raises for a slow process.
"""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
