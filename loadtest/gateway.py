"""The UGEM gateway as a child process for the comparison: `ugem serve` with a temp config.

The tool measures the gateway from outside, as any SMTP server, so it runs
the `ugem` command and never imports the gateway's packages.
`GatewayInstance(base, port, admin_port, domain, next_hop, sources)` writes
`base/ugem.toml`: data under `base/var`, SMTP on 127.0.0.1:`port`, admin on
127.0.0.1:`admin_port`, `[delivery] routes` sending `domain` to `next_hop`,
delivery concurrency per destination 50 (as Postfix's), log level warning;
`overrides` ("section.key" → a TOML value, or text taken as a string)
replace or add keys. `start()` registers the connection whose servers are
the generator's `sources` and whose domain is the senders' (`ugem connection
add ... --config FILE`), runs `ugem serve --config FILE [--workers N]` in its
own process group with its output in `base/ugem.log`, and waits for
the node's /readyz (worker 0 answers for every worker). `respawn()` starts `ugem serve`
again over the same config and data (no registration) and waits the same
way; `spawned_at` is the wall-clock time of the last spawn. `cli(*args)` runs
any other `ugem` command on the config. `queue_counts()` sums the
`ugem_queue_messages` gauge by state over the workers (the node's /metrics has each one's). `stop()`
sends SIGTERM and, once the node exits or a grace passes, SIGKILL to what is
left of its process group; it returns the exit code. Failures are
`TargetError` naming the command and the log.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

from loadtest.errors import TargetError, UsageError
from loadtest.processes import stop_group

START_TIMEOUT = 60.0
STOP_GRACE = 20.0
_QUEUE_GAUGE = re.compile(r"^ugem_queue_messages\{([^}]*)\}\s+(\S+)$", re.MULTILINE)
_STATE = re.compile(r'(?:^|,)state="([^"]*)"')


def ugem_command() -> list[str]:
    """The `ugem` next to this Python, else the one on PATH, else `python -m ugem.cli`."""
    beside = Path(sys.executable).parent / "ugem"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("ugem")
    return [found] if found else [sys.executable, "-m", "ugem.cli"]


def toml_value(text: str) -> str:
    """`text` as a TOML value: itself when it is one (50, true, "x", {...}), else a string."""
    try:
        tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return json.dumps(text)
    return text


def parse_overrides(items: list[str]) -> dict[str, dict[str, str]]:
    """`section.key=value` items → {section: {key: TOML value}}."""
    sections: dict[str, dict[str, str]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        section, dot, key = name.strip().partition(".")
        if not sep or not dot or not section or not key:
            raise UsageError(f"bad gateway setting {item!r}: use section.key=value")
        sections.setdefault(section, {})[key] = toml_value(value.strip())
    return sections


def parse_queue_gauge(text: str) -> dict[str, int]:
    """{state: messages} from the `ugem_queue_messages` lines of a Prometheus text page,
    summed over its other labels (a node of several workers labels each worker's)."""
    total: dict[str, int] = {}
    for labels, value in _QUEUE_GAUGE.findall(text):
        if (state := _STATE.search(labels)) is not None:
            total[state.group(1)] = total.get(state.group(1), 0) + int(float(value))
    return total


class GatewayInstance:
    """`ugem serve` as a child process; see the module docstring."""

    def __init__(
        self,
        base: Path,
        port: int,
        admin_port: int,
        domain: str,
        next_hop: tuple[str, int],
        sources: tuple[str, ...],
        sender_domain: str,
        workers: int | None = None,
        overrides: dict[str, dict[str, str]] | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.base = base
        self.port = port
        self.admin_port = admin_port
        self.domain = domain
        self.next_hop = next_hop
        self.sources = sources
        self.sender_domain = sender_domain
        self.workers = workers
        self.overrides = overrides or {}
        self.command = command or ugem_command()
        self.config_path = base / "ugem.toml"
        self.log = base / "ugem.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.spawned_at = 0.0  # wall clock (time.time()) of the last spawn

    @property
    def admin_ports(self) -> list[int]:
        """The node's one admin listener (worker 0's answers /readyz and /metrics for all)."""
        return [self.admin_port]

    def config(self) -> dict[str, dict[str, str]]:
        host, port = self.next_hop
        sections = {
            "node": {
                "hostname": json.dumps("gw.loadtest.invalid"),
                "data_dir": json.dumps(str(self.base / "var")),
            },
            "smtp": {"listen": json.dumps(f"127.0.0.1:{self.port}")},
            "admin": {"listen": json.dumps(f"127.0.0.1:{self.admin_port}")},
            "delivery": {
                "routes": f"{{ {json.dumps(self.domain)} = {json.dumps(f'{host}:{port}')} }}",
                "concurrency_per_destination": "50",
            },
            "log": {"level": json.dumps("warning")},
        }
        for section, keys in self.overrides.items():
            sections.setdefault(section, {}).update(keys)
        return sections

    def text(self) -> str:
        """The config file's text."""
        return "".join(
            f"[{section}]\n" + "".join(f"{key} = {value}\n" for key, value in keys.items()) + "\n"
            for section, keys in self.config().items()
        )

    def write(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.text(), encoding="utf-8")

    def register(self) -> None:
        """Add the connection the generator's sources belong to."""
        self.cli(
            "connection", "add", self.sender_domain, "--org", "Load test sender",
            "--kind", "state-body", "--server", *self.sources,
        )  # fmt: skip

    def cli(self, *args: str) -> str:
        """`ugem ARGS --config FILE`; its stdout. TargetError when it fails."""
        command = [*self.command, *args, "--config", str(self.config_path)]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=60, check=False, env=_env()
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TargetError(f"{' '.join(command)}: {exc}") from exc
        if done.returncode != 0:
            raise TargetError(f"{' '.join(command)} exited {done.returncode}: {done.stderr}")
        return done.stdout

    async def start(self) -> None:
        self.write()
        await asyncio.to_thread(self.register)
        await self.respawn()

    async def respawn(self) -> None:
        """Run `ugem serve` (again) over the written config and data; wait until ready."""
        self._spawn()
        await self._wait_ready()

    def _spawn(self) -> None:
        workers = ["--workers", str(self.workers)] if self.workers else []
        command = [*self.command, "serve", "--config", str(self.config_path), *workers]
        self.spawned_at = time.time()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=log, env=_env(), start_new_session=True
            )

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not await asyncio.to_thread(self._ready):
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise TargetError(f"ugem serve exited {self.proc.returncode}; see {self.log}")
            if time.monotonic() > deadline:
                raise TargetError(f"ugem serve not ready in {START_TIMEOUT:g} s; see {self.log}")
            await asyncio.sleep(0.1)

    def _ready(self) -> bool:
        return all(self._worker_ready(port) for port in self.admin_ports)

    @staticmethod
    def _worker_ready(port: int) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                return bool(json.load(resp).get("ready"))
        except (OSError, ValueError):
            return False

    def queue_counts(self) -> dict[str, int]:
        """Queued messages by state, summed over the workers; TargetError if one is silent."""
        total: dict[str, int] = {}
        for port in self.admin_ports:
            url = f"http://127.0.0.1:{port}/metrics"
            try:
                with urllib.request.urlopen(url, timeout=10) as resp:
                    page = resp.read().decode("utf-8", "replace")
            except OSError as exc:
                raise TargetError(f"GET {url}: {exc}; see {self.log}") from exc
            for state, count in parse_queue_gauge(page).items():
                total[state] = total.get(state, 0) + count
        return total

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL to its process group after a grace; the exit code (None
        when it was not running). Never raises."""
        return None if self.proc is None else await stop_group(self.proc, STOP_GRACE)


def _env() -> dict[str, str]:
    """This environment without UGEM_* overrides, so only the config file counts."""
    return {key: value for key, value in os.environ.items() if not key.startswith("UGEM_")}
