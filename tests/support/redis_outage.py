"""A redis-server of a test's own, to kill, hang and restart under a running node.

The fixture `own_redis` starts a private `redis-server` (fixture `redis_server`'s
is shared by a session and must stay up) on a free port with the append-only
file fsynced on every write, so a SIGKILL loses nothing it acknowledged, and
gives an `OwnRedis`: `kill()` (SIGKILL), `pause()` / `resume()` (SIGSTOP /
SIGCONT: a hung server whose port still accepts connections), `restart()` on
the same port with its data, or `restart(empty=True)` without it (its files
removed first: a server restarted without persistence, a replica promoted
before it had the data). `clients()` lists the connections the server holds:
a scenario that stopped its nodes checks that they left none open. At the end
of the test it is resumed and stopped.
Missing `redis-server` skips the test (fails under UGEM_TEST_REQUIRE_PEERS=1).
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.peers import require
from tests.support.redis_server import RedisServer, start_redis


class OwnRedis:
    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.server: RedisServer = start_redis(binary, workdir, persist=True)
        self.port = self.server.port
        self.paused = False

    @property
    def url(self) -> str:
        return self.server.url

    def kill(self) -> None:
        self.resume()
        self.server.process.kill()
        self.server.process.wait(10)

    def pause(self) -> None:
        self.server.process.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.paused and self.server.process.poll() is None:
            self.server.process.send_signal(signal.SIGCONT)
        self.paused = False

    def restart(self, empty: bool = False) -> None:
        """Start it again on the same port (after `kill`), with its data or without."""
        assert self.server.process.poll() is not None, "kill() it first"
        if empty:
            shutil.rmtree(self.workdir / "appendonlydir", ignore_errors=True)
            (self.workdir / "dump.rdb").unlink(missing_ok=True)
        self.server = start_redis(self.binary, self.workdir, port=self.port, persist=True)

    def clients(self) -> list[dict[str, str]]:
        return self.server.clients()

    def stop(self) -> None:
        self.resume()
        self.server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    binary = require("redis-server", "redis-server is not installed (apt-get install redis-server)")
    workdir = tmp_path / "redis"
    workdir.mkdir()
    redis = OwnRedis(binary, workdir)
    try:
        yield redis
    finally:
        redis.stop()
