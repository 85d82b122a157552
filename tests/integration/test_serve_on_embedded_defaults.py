"""Scenario: `ugem serve` with no config file at all, as `make serve` runs it.

It listens on SMTP 127.0.0.1:2525 and admin 127.0.0.1:8025, keeps its data
under ./var, needs no Redis, and accepts a message sent with swaks for a
connected domain registered by the CLI in the same directory.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import pytest

from tests.support.clients import needs_swaks, swaks
from tests.support.node import NodeProcess
from ugem.core.config import load_config


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.skipif(not (port_free(2525) and port_free(8025)), reason="2525 or 8025 in use")
@needs_swaks
async def test_serve_without_config_accepts_mail_for_a_connected_domain(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UGEM_")}
    add = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ugem.cli",
        "connection",
        "add",
        "mdai.gov.kz",
        "--org",
        "MDAI",
        "--kind",
        "state-body",
        "--domain",
        "mdai.gov.kz",
        "--server",
        "127.0.0.2",
        cwd=tmp_path,
        env=env,
    )
    assert await add.wait() == 0
    config = load_config(None, env={})
    node = NodeProcess(None, config, cwd=tmp_path)  # ./var is tmp_path/var
    node.start()
    try:
        await node.wait_ready()
        sent = await asyncio.to_thread(
            swaks, "127.0.0.1", 2525, "someone@example.org", "info@mdai.gov.kz", "127.0.0.9"
        )
        assert sent.returncode == 0, sent.stdout
        assert "queued as" in sent.stdout
        assert (tmp_path / "var" / "spool").is_dir()
        assert (tmp_path / "var" / "registry.db").exists()
    finally:
        node.kill()
