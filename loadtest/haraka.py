"""A private Haraka (the Node.js MTA) as a store-and-forward relay beside the gateway.

`ensure_installed()` installs Haraka from the npm registry at a pinned major
(`npm install Haraka@3 haraka-plugin-relay@1`, no optional dependencies, no
global install) into a private prefix: `$UGEM_HARAKA_PREFIX`, else `var/haraka`
under the repository; an install there of that major is reused. `version()`
is the installed package's version. Neither needs root.

`HarakaInstance(base, port, domain, next_hop, overrides, nodes)` keeps
everything under `base`: `config/`, `plugins/rdns_off.js`, the outbound queue
`queue/` and the log `haraka.log`. The relay it builds (`files()` are the
settings written, by file name):

- smtp.ini: `listen=127.0.0.1:PORT` and nothing else; `nodes=0` (one process,
  no cluster, as the gateway without --workers) or the `nodes` given (a
  cluster master and that many workers);
- plugins: `rdns_off` (ours: the client's address stands for its name, so no
  reverse DNS lookup can hang a session, as Postfix's `smtpd_peername_lookup =
  no`) and `relay`, nothing else (no DNS-using plugin, no `tls`: STARTTLS is
  not offered; the TLS key Haraka looks for at start is absent, which it logs);
- relay.ini `[relay] acl=true force_routing=true`, relay_acl_allow
  `127.0.0.0/8` (the sources relay, as Postfix's mynetworks), and
  relay_dest_domains.ini `[domains] DOMAIN = {"action": "continue",
  "nexthop": "HOST:PORT"}`: the relay plugin's force route answers Haraka's
  `get_mx` hook with the sink (the transport map of Postfix);
- no queue plugin: mail from a relaying client goes to Haraka's own outbound
  queue (a file per message and domain in `queue/`, named in the `queue_dir`
  file) and is delivered from there; outbound.ini `enable_tls=false`,
  `local_mx_ok=true` (the next hop is on loopback), `concurrency_max=50` (as
  Postfix's destination concurrency and the gateway's);
- log.ini `level=warn timestamps=true`, `me` a name under .invalid, and
  connection.ini copied from Haraka's own config, as `haraka -i` does.

`overrides` ({file: {"key" or "section.key": value}}, from `parse_overrides`
of `FILE:[SECTION.]KEY=VALUE` items) replace or add keys of the ini files
(any but connection.ini).
`write()` writes the files, `start()` runs `node .../bin/haraka -c BASE` in its
own process group and waits for its greeting, `stop()` sends SIGTERM and then
SIGKILL to what is left of its group.

Durability (read in Haraka 3.3.4's code): the 250 for a relayed message is
sent once `outbound/index.js` `process_delivery` has written its queue file
through haraka-utils' `FsyncWriteStream`, which fsyncs the file before it is
closed (`lib/fsync_writestream.js`, `_destroy`), and renamed it from its
`__tmp__.` name into the queue; the queue directory itself is not fsynced
after the rename. strace of one message shows the same order: openat of the
`__tmp__.` file, fsync, rename, then the 250 written; no fsync of the
directory. `DURABILITY` says so for the report.

Failures (npm or node missing, npm failing, Haraka exiting or not greeting)
are `TargetError` with the command's output or the log file's name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from loadtest.errors import TargetError, UsageError
from loadtest.processes import run_command, stop_group, wait_for_greeting

MAJOR = "3"
PACKAGES = (f"Haraka@{MAJOR}", "haraka-plugin-relay@1")
PREFIX_ENV = "UGEM_HARAKA_PREFIX"
SHIPPED = "connection.ini"  # copied from Haraka's config/, as `haraka -i` does
INSTALL_TIMEOUT = 600.0
START_TIMEOUT = 30.0
STOP_GRACE = 10.0
DURABILITY = (
    "Haraka's queue: each message's file is fsynced before the 250 "
    "(FsyncWriteStream in outbound/index.js); its directory is not fsynced after the rename"
)
RDNS_OFF = """\
'use strict'
// The client's address stands for its name: no reverse DNS lookup per session.
exports.hook_lookup_rdns = (next, connection) => next(OK, connection.remote.ip)
"""

Ini = dict[str, dict[str, str]]  # section -> key -> value; "main" is written without a header


def prefix() -> Path:
    """Where Haraka is installed: $UGEM_HARAKA_PREFIX, else var/haraka in the repository."""
    given = os.environ.get(PREFIX_ENV, "").strip()
    return Path(given) if given else Path(__file__).resolve().parents[1] / "var" / "haraka"


def package_dir(where: Path | None = None) -> Path:
    return (where or prefix()) / "node_modules" / "Haraka"


def installed_version(where: Path | None = None) -> str | None:
    """The version of the Haraka installed under `where` (None when there is none)."""
    try:
        meta = json.loads((package_dir(where) / "package.json").read_text())
    except (OSError, ValueError):
        return None
    found = meta.get("version") if isinstance(meta, dict) else None
    return found if isinstance(found, str) else None


def is_installed(where: Path | None = None) -> bool:
    """Whether Haraka of the pinned major, with its relay plugin, is installed under `where`."""
    base = where or prefix()
    relay = base / "node_modules" / "haraka-plugin-relay" / "package.json"
    found = installed_version(base)
    return found is not None and found.split(".")[0] == MAJOR and relay.exists()


def ensure_installed(where: Path | None = None) -> Path:
    """Install Haraka into `where` (default `prefix()`) with npm unless it is there; the prefix."""
    base = where or prefix()
    if is_installed(base):
        return base
    npm = shutil.which("npm")
    if npm is None:
        raise TargetError(f"Haraka is not installed in {base} and npm is not: install Node.js 20+")
    base.mkdir(parents=True, exist_ok=True)
    flags = ["--no-audit", "--no-fund", "--omit=optional", "--omit=dev", "--prefix", str(base)]
    run_command([npm, "install", *flags, *PACKAGES], timeout=INSTALL_TIMEOUT)
    if not is_installed(base):
        raise TargetError(f"npm installed no Haraka {MAJOR} with its relay plugin in {base}")
    return base


def version() -> str:
    return installed_version() or "?"


def parse_overrides(items: list[str]) -> dict[str, dict[str, str]]:
    """`FILE:[SECTION.]KEY=VALUE` items → {file: {"[section.]key": value}}."""
    files: dict[str, dict[str, str]] = {}
    for item in items:
        name, colon, setting = item.partition(":")
        key, equals, value = setting.partition("=")
        if not colon or not equals or not name.strip().endswith(".ini") or not key.strip():
            raise UsageError(f"bad Haraka setting {item!r}: use FILE.ini:[SECTION.]KEY=VALUE")
        if name.strip() == SHIPPED:
            raise UsageError(f"bad Haraka setting {item!r}: {SHIPPED} is Haraka's own, as shipped")
        files.setdefault(name.strip(), {})[key.strip()] = value.strip()
    return files


def render_ini(ini: Ini) -> str:
    """The text of an ini file: the main section's keys first, without a header."""
    lines = [f"{key}={value}" for key, value in ini.get("main", {}).items()]
    for section, keys in ini.items():
        if section != "main":
            lines += [f"[{section}]", *(f"{key}={value}" for key, value in keys.items())]
    return "\n".join(lines) + "\n"


def _with_overrides(ini: Ini, keys: dict[str, str]) -> Ini:
    merged = {section: dict(values) for section, values in ini.items()}
    for name, value in keys.items():
        section, dot, key = name.rpartition(".")
        merged.setdefault(section if dot else "main", {})[key] = value
    return merged


class HarakaInstance:
    """One private Haraka; see the module docstring."""

    def __init__(
        self,
        base: Path,
        port: int,
        domain: str,
        next_hop: tuple[str, int],
        overrides: dict[str, dict[str, str]] | None = None,
        nodes: int = 0,
    ) -> None:
        self.base = base
        self.conf = base / "config"
        self.queue = base / "queue"
        self.log = base / "haraka.log"
        self.port = port
        self.domain = domain
        self.next_hop = next_hop
        self.overrides = overrides or {}
        self.nodes = nodes
        self.proc: subprocess.Popen[bytes] | None = None

    def ini_files(self) -> dict[str, Ini]:
        host, port = self.next_hop
        route = json.dumps({"action": "continue", "nexthop": f"{host}:{port}"})
        ini: dict[str, Ini] = {
            "smtp.ini": {"main": {"listen": f"127.0.0.1:{self.port}", "nodes": str(self.nodes)}},
            "log.ini": {"main": {"level": "warn", "timestamps": "true", "format": "default"}},
            "relay.ini": {"relay": {"acl": "true", "force_routing": "true"}},
            "relay_dest_domains.ini": {"domains": {self.domain: route}},
            "outbound.ini": {
                "main": {"enable_tls": "false", "local_mx_ok": "true", "concurrency_max": "50"}
            },
        }
        for name, keys in self.overrides.items():
            ini[name] = _with_overrides(ini.get(name, {}), keys)
        return ini

    def files(self) -> dict[str, str]:
        """The settings written into config/, by file name (connection.ini is Haraka's own)."""
        texts = {name: render_ini(ini) for name, ini in self.ini_files().items()}
        return texts | {
            "plugins": "rdns_off\nrelay\n",
            "relay_acl_allow": "127.0.0.0/8\n",
            "me": "haraka.loadtest.invalid\n",
            "queue_dir": f"{self.queue}\n",
        }

    def write(self) -> None:
        """Write the configuration and the rdns_off plugin; make the queue directory."""
        for directory in (self.conf, self.base / "plugins", self.queue):
            directory.mkdir(parents=True, exist_ok=True)
        shipped = package_dir() / "config" / SHIPPED
        try:
            shutil.copyfile(shipped, self.conf / SHIPPED)
        except OSError as exc:
            raise TargetError(f"Haraka's connection.ini: {exc}; is Haraka installed?") from exc
        for name, text in self.files().items():
            (self.conf / name).write_text(text)
        (self.base / "plugins" / "rdns_off.js").write_text(RDNS_OFF)

    def command(self) -> list[str]:
        node = shutil.which("node")
        if node is None:
            raise TargetError("node is not installed: Haraka needs Node.js 20+")
        return [node, str(package_dir() / "bin" / "haraka"), "-c", str(self.base)]

    async def start(self) -> None:
        proc = self._spawn()
        try:
            await wait_for_greeting("127.0.0.1", self.port, START_TIMEOUT, "Haraka", proc)
        except TargetError as exc:
            raise TargetError(f"{exc}; see {self.log}") from exc

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = self.command()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                command, cwd=self.base, stdout=log, stderr=log, start_new_session=True
            )
        return self.proc

    async def stop(self) -> None:
        """Stop it (SIGTERM, SIGKILL to its group after a grace); never raises."""
        if self.proc is not None:
            await stop_group(self.proc, STOP_GRACE)
