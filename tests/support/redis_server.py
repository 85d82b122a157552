"""A real, private redis-server on loopback for the tests (a pytest plugin).

`redis_server` (session scope) starts `redis-server` on a free port of
127.0.0.1 with no persistence and its own directory, as a one-node Redis Cluster
(every hash slot its own: a command or script that touches keys of two slots is
refused with CROSSSLOT, so every test on it checks the keys are hash-tagged, as
`ugem.core.store.redis_keys` promises), waits until it answers
PING, yields a `RedisServer` (`.url` is `redis://127.0.0.1:PORT/0`) and stops
it at the end of the session. `redis_url` (function scope) empties it
(FLUSHALL) before each test and returns the URL. `RedisServer.clients()` lists
the connections the server holds (but its own). A test that kills, hangs or
restarts its Redis starts its own: `start_redis(binary, workdir, port=...,
persist=True, extra=(...), cluster=False)` (the append-only file, fsync always, so a SIGKILL loses
nothing it acknowledged; `port` to come back where the nodes look; `extra`
more arguments, e.g. `--replicaof`: tests.support.sentinel). When `redis-server` is not
installed, the tests that ask for these fixtures are skipped with that reason
(fail under UGEM_TEST_REQUIRE_PEERS=1: tests.support.peers);
a server that does not start is an error, never a skip. Never a mock.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from loadtest.ports import free_port
from tests.support.peers import require
from tests.support.processes import stop_process

START_TIMEOUT = 10.0
POLL_INTERVAL = 0.02
CLUSTER_SLOTS = 16384


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, *words: str) -> bytes:
        """Send one command (inline form) and return the first line of the reply. The
        reader is closed with the socket, however the call ends: a socket closed while a
        makefile() of it is open stays open until that file is collected, and a collector
        that finds it then says "unclosed socket" (a ResourceWarning, an error here)."""
        with (
            socket.create_connection(("127.0.0.1", self.port), timeout=2.0) as sock,
            sock.makefile("rb") as reader,
        ):
            sock.sendall(" ".join(words).encode() + b"\r\n")
            return reader.readline().rstrip(b"\r\n")

    def clients(self) -> list[dict[str, str]]:
        """The server's client connections (CLIENT LIST) but the one asking: how a test
        sees that a closed client left none open and opened none again."""
        with redis.Redis(port=self.port, socket_timeout=2.0, decode_responses=True) as client:
            own = str(client.client_id())
            return [c for c in client.client_list() if c["id"] != own]

    def client_ids(self) -> set[str]:
        """The ids of `clients()`: what a test compares before and after."""
        return {c["id"] for c in self.clients()}

    def stop(self) -> None:
        stop_process(self.process, 10)


def start_redis(
    binary: str,
    workdir: Path,
    attempts: int = 3,
    port: int = 0,
    persist: bool = False,
    extra: Sequence[str] = (),
    cluster: bool = False,
) -> RedisServer:
    """Start redis-server on a free port (or `port`) in `workdir`; wait until it answers PING.

    A port taken between choosing and binding makes the server exit; another
    free port is tried then (never another than a given `port`). `persist`:
    the append-only file in `workdir`, fsynced on every write.
    """
    log = workdir / "redis.log"
    durability = ["--appendonly", "yes", "--appendfsync", "always"] if persist else []
    # the cluster bus gets a free port of its own: by default it is the port + 10000, which
    # may be taken or beyond 65535 (then the server exits)
    clustered = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
    for _ in range(attempts):
        args = [
            binary,
            "--port",
            str(port or free_port()),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            *durability,
            *((*clustered, "--cluster-port", str(free_port())) if cluster else ()),
            *extra,
            "--dir",
            str(workdir),
            "--logfile",
            str(log),
        ]
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        server = RedisServer(int(args[2]), process, log)
        try:
            if _wait_ready(server) and (not cluster or _serve_every_slot(server)):
                return server
        except BaseException:
            server.stop()  # never a server left running by a start that failed
            raise
        server.stop()
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise RuntimeError(f"redis-server did not answer PING:\n{tail}")


def _wait_ready(server: RedisServer) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and server.process.poll() is None:
        try:
            if server.command("PING") == b"+PONG":
                return True
        except OSError:
            pass
        time.sleep(POLL_INTERVAL)  # polls readiness; no test logic waits on time
    return False


def _serve_every_slot(server: RedisServer) -> bool:
    """Make a one-node cluster of `server` (every hash slot its own); wait until it is ok."""
    with redis.Redis(port=server.port, socket_timeout=2.0, decode_responses=True) as client:
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, CLUSTER_SLOTS - 1)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if "cluster_state:ok" in str(client.execute_command("CLUSTER", "INFO")):
                return True
            time.sleep(POLL_INTERVAL)  # polls readiness; no test logic waits on time
    return False


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = require("redis-server", "redis-server is not installed (apt-get install redis-server)")
    server = start_redis(binary, tmp_path_factory.mktemp("redis"), cluster=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    reply = redis_server.command("FLUSHALL")
    assert reply == b"+OK", f"FLUSHALL answered {reply!r}"
    return redis_server.url
