"""Scenario: a port the node is to listen on is taken; the start stops with one line.

Another process holds the SMTP port (or the admin port): `Node.start()` raises
`UgemError` naming the key and the address ("smtp.listen 127.0.0.1:P: cannot
listen: ... address already in use"), which `ugem serve` prints as one line,
`ugem: failed: ...`, exit 1, not a traceback; nothing is left listening.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.node import node_config
from ugem.core.config import parse_hostport
from ugem.core.errors import UgemError
from ugem.node import Node


def hold(listen: str) -> socket.socket:
    """A socket of another process's kind, bound and listening on `listen`."""
    host, port = parse_hostport(listen, listen=True)
    held = socket.socket()
    held.bind((host, port))
    held.listen()
    return held


@pytest.mark.parametrize("key", ["smtp", "admin"])
async def test_a_busy_port_stops_the_start_naming_the_key(tmp_path: Path, key: str) -> None:
    config, _ = node_config(tmp_path)
    listen = config.smtp.listen if key == "smtp" else config.admin.listen
    with hold(listen):
        node = Node(config)
        with pytest.raises(UgemError) as raised:
            await node.start()
        await node.stop(grace=0.1)
    named = {"smtp": f"smtp.listen {listen}", "admin": f"admin listener {listen}"}[key]
    assert str(raised.value).startswith(f"{named}: cannot listen")
    assert "in use" in str(raised.value)


def test_ugem_serve_says_it_in_one_line(tmp_path: Path) -> None:
    config, path = node_config(tmp_path)
    with hold(config.smtp.listen):
        ran = subprocess.run(
            [sys.executable, "-m", "ugem.cli", "serve", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert ran.returncode == 1
    last = ran.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ugem: failed: smtp.listen {config.smtp.listen}: cannot listen")
    assert "Traceback" not in ran.stderr


async def test_a_second_node_on_the_same_data_directory_stops_before_opening_it(
    tmp_path: Path,
) -> None:
    """Two nodes on one data directory would share a spool: the second stops at once,
    naming the directory and the first one's pid, before it opens the spool or the store."""
    config, _ = node_config(tmp_path)
    first = Node(config)
    await first.start()
    try:
        (tmp_path / "other").mkdir()
        other, _ = node_config(tmp_path / "other", node={"data_dir": str(config.data_path)})
        second = Node(other)
        with pytest.raises(UgemError) as raised:
            await second.start()
        await second.stop(grace=0.1)
        assert str(raised.value) == (
            f"node.data_dir {config.data_path}: worker 0 of another node (pid {os.getpid()}) "
            "runs on it; one node per data directory"
        )
        assert second.spool is None and second.store is None  # nothing was opened
    finally:
        await first.stop(grace=0.1)
