"""A real Redis Sentinel group on loopback for the tests (a pytest plugin).

The fixture `sentinel_group` starts, each on a free port of 127.0.0.1 and in a
directory of its own: a master `redis-server`, one replica of it
(`--replicaof`), and 3 `redis-sentinel` processes (Debian's package) with a
generated config monitoring the master as `MASTER` (quorum 2,
down-after-milliseconds 1000, failover-timeout 5000). It waits (polling, with
a deadline) until the replica's link is up and every sentinel knows the
replica and the 2 other sentinels, so a failover can happen at once, and
gives a `SentinelGroup`: `.url` is the store URL
`redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/MASTER/0`,
`master_port()` what the sentinels name as master now, `kill_master()`
(SIGKILL) and `sync_replica()` (WAIT for the replica to have every write).
Every process is stopped at teardown. Missing `redis-server` or
`redis-sentinel` skips the test (fails under UGEM_TEST_REQUIRE_PEERS=1:
tests.support.peers); a group that does not form is an error, never a skip.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from loadtest.ports import free_port
from tests.support.peers import require
from tests.support.processes import stop_process
from tests.support.redis_server import start_redis

MASTER = "ugem"
SENTINELS = 3
FORM_TIMEOUT = 30.0
POLL_INTERVAL = 0.05

CONFIG = """port {port}
bind 127.0.0.1
dir {dir}
logfile {dir}/sentinel.log
sentinel monitor {master} 127.0.0.1 {master_port} 2
sentinel down-after-milliseconds {master} 1000
sentinel failover-timeout {master} 5000
sentinel parallel-syncs {master} 1
"""


class SentinelGroup:
    def __init__(self, server: str, sentinel: str, workdir: Path) -> None:
        self.master = start_redis(server, _dir(workdir, "master"))
        replica_of = ["--replicaof", "127.0.0.1", str(self.master.port)]
        self.replica = start_redis(server, _dir(workdir, "replica"), extra=replica_of)
        self.sentinels: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []
        for number in range(SENTINELS):
            self._start_sentinel(sentinel, _dir(workdir, f"sentinel{number}"))

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        return f"redis+sentinel://{hosts}/{MASTER}/0"

    def _start_sentinel(self, binary: str, workdir: Path) -> None:
        port = free_port()
        conf = workdir / "sentinel.conf"
        text = CONFIG.format(port=port, dir=workdir, master=MASTER, master_port=self.master.port)
        conf.write_text(text, encoding="utf-8")
        self.sentinels.append(
            subprocess.Popen(
                [binary, str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
        )
        self.ports.append(port)

    def client(self, port: int) -> redis.Redis:
        """A short-lived client of one process of the group (use it in a `with`)."""
        return redis.Redis(port=port, socket_timeout=2.0, decode_responses=True)

    def formed(self) -> bool:
        """The replica is in sync and every sentinel knows it and the others."""
        try:
            with self.client(self.replica.port) as replica:
                if replica.info("replication").get("master_link_status") != "up":
                    return False
            for port in self.ports:
                with self.client(port) as sentinel:
                    state = sentinel.sentinel_master(MASTER)
                if state["num-slaves"] < 1 or state["num-other-sentinels"] < SENTINELS - 1:
                    return False
        except redis.RedisError:
            return False
        return True

    def wait_formed(self) -> None:
        deadline = time.monotonic() + FORM_TIMEOUT
        while not self.formed():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sentinel group did not form in {FORM_TIMEOUT} s")
            time.sleep(POLL_INTERVAL)  # polls readiness; no test logic waits on time

    def master_port(self) -> int | None:
        """The port a sentinel names as the master now (None: no sentinel answers)."""
        for port in self.ports:
            try:
                with self.client(port) as sentinel:
                    found = sentinel.sentinel_get_master_addr_by_name(MASTER)
            except redis.RedisError:
                continue
            if found:
                return int(found[1])
        return None

    def sync_replica(self) -> None:
        """Wait until the replica acknowledged every write the master took (WAIT 1)."""
        with self.client(self.master.port) as master:
            acked = master.execute_command("WAIT", 1, 5000)
        assert acked >= 1, "the replica did not acknowledge the master's writes"

    def kill_master(self) -> None:
        self.master.process.kill()
        self.master.process.wait(10)

    def stop(self) -> None:
        for process in self.sentinels:
            stop_process(process, 10)
        self.replica.stop()
        self.master.stop()


def _dir(parent: Path, name: str) -> Path:
    path = parent / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def start_group(workdir: Path) -> SentinelGroup:
    server = require("redis-server", "redis-server is not installed (apt-get install redis-server)")
    sentinel = require(
        "redis-sentinel", "redis-sentinel is not installed (apt-get install redis-sentinel)"
    )
    group = SentinelGroup(server, sentinel, workdir)
    try:
        group.wait_formed()
    except BaseException:
        group.stop()
        raise
    return group


@contextlib.contextmanager
def running_group(workdir: Path) -> Iterator[SentinelGroup]:
    """A group started in `workdir`, stopped on leaving (a fixture of any scope uses it)."""
    group = start_group(workdir)
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    with running_group(tmp_path / "sentinel") as group:
        yield group
