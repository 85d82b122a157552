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
/readyz. `stop()` sends SIGTERM and, once the node exits or a grace passes,
SIGKILL to what is left of its process group. Failures are `TargetError`
naming the command and the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

from loadtest.errors import TargetError, UsageError

START_TIMEOUT = 60.0
STOP_GRACE = 20.0


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

    def write(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        text = "".join(
            f"[{section}]\n" + "".join(f"{key} = {value}\n" for key, value in keys.items()) + "\n"
            for section, keys in self.config().items()
        )
        self.config_path.write_text(text, encoding="utf-8")

    def register(self) -> None:
        """Add the connection the generator's sources belong to."""
        self._ugem(
            "connection", "add", self.sender_domain, "--org", "Load test sender",
            "--kind", "state-body", "--server", *self.sources,
        )  # fmt: skip

    def _ugem(self, *args: str) -> str:
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
        self._spawn()
        await self._wait_ready()

    def _spawn(self) -> None:
        workers = ["--workers", str(self.workers)] if self.workers else []
        command = [*self.command, "serve", "--config", str(self.config_path), *workers]
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
        url = f"http://127.0.0.1:{self.admin_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(json.load(resp).get("ready"))
        except (OSError, ValueError):
            return False

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL to its process group after a grace; never raises."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(proc.wait, STOP_GRACE)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # what is left of its group (workers)
        await asyncio.to_thread(proc.wait)


def _env() -> dict[str, str]:
    """This environment without UGEM_* overrides, so only the config file counts."""
    return {key: value for key, value in os.environ.items() if not key.startswith("UGEM_")}
