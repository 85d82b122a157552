"""A private Postfix instance, configured as the same kind of relay as the gateway.

`PostfixInstance(base, port, domain, next_hop)` keeps everything under `base`:
`conf/` (main.cf, master.cf, the transport map), `queue/`, `data/` and the
log file `maillog`. It never touches /etc/postfix or the system's instance:
every command gets `-c base/conf`. The relay it builds: smtpd on
127.0.0.1:`port` and no other listener, `mynetworks = 127.0.0.0/8`,
`domain` relayed to `next_hop` by a transport map, `in_flow_delay = 0`,
destination concurrency 50, TLS off both ways, no chroot, no local delivery.
`overrides` (name → value) replace or add main.cf parameters.

`write()` writes the files, `check()` runs `postconf -c DIR -n` and `postfix
-c DIR check`, `start()` starts it and waits for its greeting, `stop()` stops
it and waits for its master process to go (SIGKILL to that process after a
grace). `ensure_installed()` installs Debian's postfix package
non-interactively when it is missing. Failures are `TargetError` with the
command's output and the log file's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

from loadtest.errors import TargetError
from loadtest.processes import run_command, wait_for_greeting

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
SETTLED_AGE = 60.0  # seconds the config files' times are set back

# Services the relay needs; columns as in master.cf(5), chroot always "n".
MASTER_SERVICES = """\
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def ensure_installed() -> None:
    """Install Debian's postfix (no configuration of the system's instance) if missing."""
    if Path(POSTFIX).exists() and Path(POSTCONF).exists():
        return
    if shutil.which("apt-get") is None:
        raise TargetError("Postfix is not installed and apt-get is not available")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    selection = "postfix postfix/main_mailer_type select No configuration\n"
    steps = [
        (["debconf-set-selections"], selection),
        (["apt-get", "update", "-q"], None),
        (["apt-get", "install", "-y", "-q", "--no-install-recommends", "postfix"], None),
    ]
    for command, stdin in steps:
        run_command(command, env=env, stdin=stdin, timeout=600)


def version() -> str:
    return run_command([POSTCONF, "-d", "-h", "mail_version"]).strip()


class PostfixInstance:
    """One private Postfix; see the module docstring."""

    def __init__(
        self,
        base: Path,
        port: int,
        domain: str,
        next_hop: tuple[str, int],
        overrides: dict[str, str] | None = None,
    ) -> None:
        self.base = base
        self.conf = base / "conf"
        self.queue = base / "queue"
        self.maillog = base / "maillog"
        self.port = port
        self.domain = domain
        self.next_hop = next_hop
        self.overrides = overrides or {}

    def main_cf(self) -> dict[str, str]:
        params = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue),
            "data_directory": str(self.base / "data"),
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(self.base),
            "myhostname": "postfix.loadtest.invalid",
            "mydomain": "loadtest.invalid",
            "mydestination": "",
            "local_transport": "error:local delivery is disabled",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "relay_domains": self.domain,
            "transport_maps": f"texthash:{self.conf / 'transport'}",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "in_flow_delay": "0",
            "default_destination_concurrency_limit": "50",
            "default_process_limit": "200",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "smtpd_peername_lookup": "no",
            "biff": "no",
            "append_dot_mydomain": "no",
        }
        return params | self.overrides

    def files(self) -> dict[str, str]:
        """The configuration files (conf/) by name, as written."""
        host, port = self.next_hop
        main = "".join(f"{name} = {value}\n" for name, value in self.main_cf().items())
        listener = f"127.0.0.1:{self.port} inet n - n - - smtpd\n"
        return {
            "transport": f"{self.domain} smtp:[{host}]:{port}\n",
            "main.cf": main,
            "master.cf": listener + MASTER_SERVICES,
        }

    def write(self) -> None:
        """Write the configuration; the instance's directories readable by the postfix user."""
        self.conf.mkdir(parents=True, exist_ok=True)
        self.queue.mkdir(exist_ok=True)
        for directory in (self.base, self.conf, self.queue):
            directory.chmod(0o755)
        settled = time.time() - SETTLED_AGE
        for name, text in self.files().items():
            (self.conf / name).write_text(text)
            # Postfix waits for a main.cf younger than a second or two to settle
            os.utime(self.conf / name, (settled, settled))

    def check(self) -> str:
        """`postconf -n` of the instance (TargetError if Postfix refuses the configuration)."""
        shown = run_command([POSTCONF, "-c", str(self.conf), "-n"])
        run_command([POSTFIX, "-c", str(self.conf), "check"])
        return shown

    async def start(self) -> None:
        await asyncio.to_thread(run_command, [POSTFIX, "-c", str(self.conf), "start"])
        try:
            await wait_for_greeting("127.0.0.1", self.port, START_TIMEOUT, "Postfix")
        except TargetError as exc:
            raise TargetError(f"{exc}; see {self.maillog}") from exc

    def master_pid(self) -> int | None:
        try:
            return int((self.queue / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    async def stop(self) -> None:
        """Stop the instance; never raises for one that is not running."""
        pid = self.master_pid()
        with contextlib.suppress(TargetError):
            await asyncio.to_thread(run_command, [POSTFIX, "-c", str(self.conf), "stop"])
        if pid is None:
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        while _alive(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
