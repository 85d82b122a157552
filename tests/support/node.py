"""A relay node for scenario tests: in-process (`running_node`) or as a real process.

`node_config(tmp_path, ...)` writes a TOML file for a node whose data lives in
tmp_path and whose listeners take free loopback ports, and loads it exactly as
`ugem serve` would; it checks no public DNS blocklist (`[reputation]
dnsbl_zones` empty unless the test names its own zones). `running_node(config,
clock)` runs a `ugem.node.Node` on the test's own event loop (on a `FakeClock`
if given). `NodeProcess` runs `ugem serve` as a child process, for what needs
a real process: SIGKILL, SIGTERM, exit codes. `connect(...)` adds a connection
to a node's store the way the CLI does; `node_relaying_to(tmp_path, sink,
...)` is the usual outbound scene: a node config whose mail for example.org
goes to `sink`, with mdai.gov.kz connected from 127.0.0.2. `send_mail(config,
...)` sends one message to a node through smtplib from a given loopback
address, and `api_client(node, name, role)` talks to its admin API with a new
token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from loadtest.ports import free_port
from relay.queue.message import QueuedMessage
from tests.support.clients import Sent, message, smtplib_send
from tests.support.sink import Sink
from tests.support.waiting import eventually_read
from ugem.commands.config import toml_value
from ugem.core.clock import Clock
from ugem.core.config import Config, load_config
from ugem.core.model import Connection, OrgKind
from ugem.core.services.audit import AuditLog
from ugem.core.services.tokens import Role, TokenService
from ugem.core.store import open_store
from ugem.node import Node

MAX_WORKERS = 4  # the most workers a test node runs: their admin ports follow the first


def node_config(tmp_path: Path, **sections: dict[str, Any]) -> tuple[Config, Path]:
    """A config file for a test node; `sections` override or add keys per section."""
    base: dict[str, dict[str, Any]] = {
        "node": {"hostname": "gw.test", "data_dir": str(tmp_path / "var")},
        "smtp": {"listen": f"127.0.0.1:{free_port()}"},
        "admin": {"listen": f"127.0.0.1:{free_port(count=MAX_WORKERS)}"},  # + I per worker
        "delivery": {"scan_interval": 0.05, "min_backoff": 1.0, "max_backoff": 2.0},
        "auth": {"timeout": 1.0},
        "reputation": {"dnsbl_zones": []},  # never the public blocklists: tests set their own
        "log": {"level": "warning"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    if not base["delivery"].get("dns_servers"):
        # Inbound SPF/DKIM/DMARC need DNS; tests query only a private one on loopback.
        base["auth"].setdefault("enabled", False)
    text = "\n".join(
        f"[{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in keys.items())
        for name, keys in base.items()
    )
    path = tmp_path / "ugem.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env={}), path


@contextlib.asynccontextmanager
async def running_node(config: Config, clock: Clock | None = None) -> AsyncIterator[Node]:
    node = Node(config, clock)
    await node.start()
    try:
        yield node
    finally:
        await node.stop(grace=2.0)


async def connect(
    config: Config, conn_id: str, servers: list[str], domains: list[str] | None = None
) -> Connection:
    """Register a connected organisation in the node's store (as `ugem connection add`)."""
    conn = Connection(
        id=conn_id,
        org_name=f"Org of {conn_id}",
        kind=OrgKind.STATE_BODY,
        domains=tuple(domains or [conn_id]),
        servers=tuple(servers),
    )
    store = open_store(config.store_url)
    try:
        await store.add(conn)
    finally:
        await store.close()
    return conn


def smtp_address(config: Config) -> tuple[str, int]:
    host, _, port = config.smtp.listen.rpartition(":")
    return host, int(port)


async def node_relaying_to(
    tmp_path: Path,
    sink: Sink,
    conn_id: str = "mdai.gov.kz",
    servers: Sequence[str] = ("127.0.0.2",),
    **sections: dict[str, Any],
) -> tuple[Config, Path]:
    """`node_config` with example.org routed to `sink` and `conn_id` connected from `servers`."""
    route = {"routes": {"example.org": f"{sink.host}:{sink.port}"}}
    config, path = node_config(
        tmp_path, **(sections | {"delivery": route | sections.get("delivery", {})})
    )
    await connect(config, conn_id, list(servers))
    return config, path


async def send_mail(
    config: Config, sender: str, rcpts: list[str], source: str, subject: str = "test"
) -> Sent:
    """One message to the node's SMTP listener from `source`, by smtplib in a thread."""
    host, port = smtp_address(config)
    data = message(sender, rcpts[0], subject)
    return await asyncio.to_thread(smtplib_send, host, port, sender, rcpts, data, source)


@contextlib.asynccontextmanager
async def api_client(node: Node, name: str, role: Role) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the node's admin API with a new token `name` of `role`."""
    assert node.store is not None
    audit = AuditLog(node.store, node.clock)
    _, secret = await TokenService(node.store, audit, node.clock).create(name, role, "t")
    headers = {"Authorization": f"Bearer {secret}"}
    url = f"http://{node.config.admin.listen}"
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        yield client


async def queued_until(
    node: Node, queue_id: str, condition: Callable[[QueuedMessage], bool], timeout: float = 10
) -> QueuedMessage:
    """The spooled message once `condition` holds for it (read as the node works); it
    must stay in the spool meanwhile."""
    spool = node.spool
    assert spool is not None

    async def read() -> QueuedMessage:
        msg = await spool.get(queue_id, with_data=False)
        assert msg is not None, f"{queue_id} left the spool"
        return msg

    return await eventually_read(read, condition, timeout, f"{queue_id}'s condition")


class NodeProcess:
    """`ugem serve --config FILE` as a child process."""

    def __init__(
        self,
        config_path: Path | None,
        config: Config,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.config_path = config_path
        self.config = config
        self.cwd = cwd
        self.extra_env = env or {}  # added to the environment (LD_PRELOAD for fault tests)
        self.proc: subprocess.Popen[bytes] | None = None
        where = config_path.parent if config_path else cwd
        assert where is not None, "a node process needs a config file or a working directory"
        self.log_path = where / "node.log"

    def start(self) -> None:
        log = self.log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("UGEM_")}
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        config = ["--config", str(self.config_path)] if self.config_path else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ugem.cli", "serve", *config],
            stdout=log,
            stderr=log,
            env=env,
            cwd=self.cwd,
        )
        log.close()

    def ready(self) -> bool:
        url = f"http://{self.config.admin.listen}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bool(json.load(resp)["ready"])
        except OSError:
            return False

    async def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not await asyncio.to_thread(self.ready):
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"node exited {self.proc.returncode}: {self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"node not ready in {timeout} s: {self.output()}")
            await asyncio.sleep(0.05)

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return await asyncio.to_thread(self.proc.wait, timeout)

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
