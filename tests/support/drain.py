"""What the drain scenarios do to and read from two real nodes.

`admin_token(config, role)` makes a token in a node's own store (the secret);
`token_file(tmp_path, secret)` writes it where `--token-file` reads it.
`queue_items(config)` reads every worker's spool of a node as a second process
does (`ugem queue list` does the same), `queued_ids(config)` only the ids.
`ugem_drain(config_path, *args)` runs `ugem drain` as a child process and
gives its exit code, stdout and stderr. `readyz(config)` is the node's
`/readyz` answer, whatever its status (None while nothing answers), and
`wait_answering(node)` waits for one from a node that has started (not
"node is starting"), as a node being drained is never ready.
`greeting(config)` is the SMTP reply a new session gets.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from relay.queue.spool import spool_paths
from tests.support.node import NodeProcess, smtp_address
from ugem.adapters.spool_queue import SpoolQueue, open_spools
from ugem.core.clock import SystemClock
from ugem.core.config import Config
from ugem.core.queue_filter import MailFilter
from ugem.core.services.audit import AuditLog
from ugem.core.services.mailqueue import MailItem
from ugem.core.services.tokens import Role, TokenService
from ugem.core.store import open_store


async def admin_token(config: Config, role: Role = Role.ADMIN, name: str = "drain") -> str:
    store, clock = open_store(config.store_url), SystemClock()
    try:
        _, secret = await TokenService(store, AuditLog(store, clock), clock).create(
            name, role, "test"
        )
        return secret
    finally:
        await store.close()


def token_file(tmp_path: Path, secret: str, name: str = "b.token") -> Path:
    path = tmp_path / name
    path.write_text(secret + "\n", encoding="utf-8")
    return path


async def queue_items(config: Config) -> list[MailItem]:
    async with open_spools(spool_paths(config), SystemClock()) as spools:
        return await SpoolQueue(*spools).list(MailFilter(), 100_000)


async def queued_ids(config: Config) -> set[str]:
    return {m.id for m in await queue_items(config)}


async def ugem_drain(config_path: Path, *args: str) -> tuple[int, str, str]:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ugem.cli", "drain", "--config", str(config_path), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await child.communicate()
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()


def _readyz(config: Config) -> tuple[int, dict[str, Any]] | None:
    url = f"http://{config.admin.listen}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)
    except OSError:
        return None


async def readyz(config: Config) -> tuple[int, dict[str, Any]] | None:
    return await asyncio.to_thread(_readyz, config)


async def wait_answering(node: NodeProcess, timeout: float = 30.0) -> tuple[int, dict[str, Any]]:
    """The first `/readyz` answer of a node that has started (its admin listener answers
    "node is starting" for a moment before)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (answer := await readyz(node.config)) is None or _starting(answer):
        assert node.proc is not None and node.proc.poll() is None, node.output()
        assert loop.time() < deadline, f"no /readyz answer in {timeout} s: {node.output()}"
        await asyncio.sleep(0.05)
    return answer


def _starting(answer: tuple[int, dict[str, Any]]) -> bool:
    return str(answer[1].get("reason", "")) == "node is starting"


def _greeting(config: Config) -> tuple[int, str]:
    host, port = smtp_address(config)
    try:
        with smtplib.SMTP(host, port, timeout=10) as client:
            _, text = client.noop()
            return 220, text.decode()
    except smtplib.SMTPConnectError as exc:  # a greeting that is not 220
        said = exc.smtp_error
        return exc.smtp_code, said.decode() if isinstance(said, bytes) else said


async def greeting(config: Config) -> tuple[int, str]:
    return await asyncio.to_thread(_greeting, config)
