"""Scenario: `ugem reload` makes a running node take its changed config file, dropping no session.

A node (`ugem serve --config FILE`, a process of its own) relays example.org
to sink A. With a session open, the file is changed: example.org now goes to
sink B, `[smtp] max_message_size` drops to 1 KiB, and `[smtp] listen` moves.
`ugem reload` answers for the worker: applied `smtp.max_message_size` and
`delivery.routes`, and `smtp.listen` needs a restart (kept as it was). The
open session goes on with the limits it started with (EHLO after the reload
still announces SIZE 26214400) on the old port, new mail goes to sink B, and
a new session is announced SIZE 1024.
`ugem status` shows the worker still ready. A file with a bad value is
refused by `ugem reload` before the node is told (exit 2, the key named),
and the node runs on as it was; a SIGHUP sent with that file is refused by
the node, which says why in its status file and runs on as it was.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.node import NodeProcess, connect, node_config, send_mail, smtp_address
from tests.support.sink import Sink
from tests.support.smtp_harness import RawClient
from tests.support.waiting import eventually_read
from ugem.core.config import Config
from ugem.core.runtime import RUN_DIR, read_workers

pytestmark = pytest.mark.slow

CONN, SERVER = "mdai.gov.kz", "127.0.0.2"


def write_config(tmp_path: Path, base: Config, sink: Sink, **smtp: object) -> None:
    """The node's config file again: its own ports and data, example.org to `sink`."""
    node_config(
        tmp_path,
        smtp={"listen": base.smtp.listen} | smtp,
        admin={"listen": base.admin.listen},
        delivery={"routes": {"example.org": f"{sink.host}:{sink.port}"}},
    )


async def ugem(path: Path, *words: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ugem.cli", *words, "--config", str(path)]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60, check=False
    )


async def test_a_reload_applies_routes_and_limits_and_names_what_needs_a_restart(
    tmp_path: Path,
) -> None:
    a, b = await Sink.start("127.0.0.1", 0), await Sink.start("127.0.0.1", 0)
    config, path = node_config(
        tmp_path, delivery={"routes": {"example.org": f"127.0.0.1:{a.port}"}}
    )
    await connect(config, CONN, [SERVER])
    node = NodeProcess(path, config)
    node.start()
    try:
        await node.wait_ready()
        assert (await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], SERVER, "one")).ok
        await a.wait_for(1, timeout=30)
        kept = await RawClient.open(smtp_address(config)[1])
        assert (await kept.session()).code == 250  # greeted, EHLO answered

        write_config(tmp_path, config, b, max_message_size=1024, listen="127.0.0.1:1")
        done = await ugem(path, "reload")
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip() == (
            "worker 0: applied: smtp.max_message_size, delivery.routes; "
            "needs a restart (kept as it was): smtp.listen"
        )
        again = await kept.command(b"EHLO again.test\r\n")  # not dropped, its limits kept
        assert again.code == 250 and "250-SIZE 26214400" in again.lines
        await kept.close()
        assert (await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], SERVER, "two")).ok
        await b.wait_for(1, timeout=30)
        assert len(a.messages) == 1
        fresh = await RawClient.open(smtp_address(config)[1])
        assert "250-SIZE 1024" in (await fresh.session()).lines
        await fresh.close()
        status = await ugem(path, "status")
        assert status.returncode == 0, status.stdout

        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("max_message_size = 1024", "max_message_size = 5"))
        refused = await ugem(path, "reload")  # checked before the node is told anything
        assert refused.returncode == 2
        assert "config key smtp.max_message_size: 5 is not valid" in refused.stderr
        told = time.time()
        node.signal(signal.SIGHUP)  # as `kill -HUP` does, without the CLI's check

        async def answered() -> dict[str, Any] | None:
            [worker] = read_workers(config.data_path / RUN_DIR, time.time()).found
            return worker.reload if worker.reload and worker.reload["at"] >= told else None

        answer = await eventually_read(answered, bool, 15, "the worker's answer")
        assert answer is not None and answer["applied"] == []
        assert answer["error"].startswith("config key smtp.max_message_size: 5 is not valid")
        assert (await send_mail(config, "a@mdai.gov.kz", ["x@example.org"], SERVER, "four")).ok
    finally:
        node.kill()
        await a.stop()
        await b.stop()
