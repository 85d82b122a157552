"""Scenario: a renewed certificate is put in place and the running `ugem serve` gets SIGHUP.

New STARTTLS sessions are shown the new certificate (compared by SHA-256
fingerprint), a session opened before the signal goes on, and the process
keeps running. With `--workers 2` the supervisor passes SIGHUP to both
workers: neither dies, and every new session is shown the new certificate.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support.node import NodeProcess, node_config, smtp_address
from tests.support.smtp_harness import RawClient
from tests.support.tls_cert import client_context, fingerprint, self_signed, starttls_fingerprint
from ugem.core.config import Config

SESSIONS_AFTER_RELOAD = 6  # new sessions checked with two workers (spread by the kernel)


def certificate_pair(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """The live cert/key paths (holding the first pair) and a renewed pair elsewhere."""
    (tmp_path / "live").mkdir()
    (tmp_path / "renewed").mkdir()
    live_cert, live_key = self_signed(tmp_path / "live", "gw.test")
    new_cert, new_key = self_signed(tmp_path / "renewed", "gw.test")
    return live_cert, live_key, new_cert, new_key


async def shown(config: Config) -> str:
    host, port = smtp_address(config)
    return await asyncio.to_thread(starttls_fingerprint, host, port)


async def until_shown(config: Config, expected: str, timeout: float = 10.0) -> None:
    """Wait until a new STARTTLS session is shown `expected` (the reload is asynchronous)."""
    deadline = time.monotonic() + timeout
    while (seen := await shown(config)) != expected:
        assert time.monotonic() < deadline, f"still shown {seen} after {timeout} s"
        await asyncio.sleep(0.05)


def admin_get(config: Config, path: str) -> bytes | None:
    """The node's admin endpoint (worker 0's, which answers for every worker)."""
    try:
        with urllib.request.urlopen(f"http://{config.admin.listen}{path}", timeout=1) as resp:
            return bytes(resp.read())
    except OSError:
        return None


def worker_pids(config: Config, workers: int) -> list[int | None]:
    """Each worker's pid as the node's /readyz lists them (None: not answering yet)."""
    answer = admin_get(config, "/readyz")
    listed = (
        {w["worker"]: w["pid"] for w in json.loads(answer).get("workers") or []} if answer else {}
    )
    return [listed.get(index) for index in range(workers)]


def reloaded(config: Config, workers: int) -> bool:
    """Whether every worker's metrics count one successful reload."""
    page = (admin_get(config, "/metrics") or b"").decode()
    done = {
        s.labels.get("worker")
        for family in text_string_to_metric_families(page)
        if family.name == "ugem_tls_reloads"
        for s in family.samples
        if s.name == "ugem_tls_reloads_total" and s.labels.get("result") == "ok" and s.value == 1
    }
    return done == {str(i) for i in range(workers)}


async def test_sighup_reloads_the_certificate_and_keeps_sessions(tmp_path: Path) -> None:
    live_cert, live_key, new_cert, new_key = certificate_pair(tmp_path)
    config, path = node_config(
        tmp_path, smtp={"tls_cert": str(live_cert), "tls_key": str(live_key)}
    )
    node = NodeProcess(path, config)
    node.start()
    try:
        await node.wait_ready()
        assert await shown(config) == fingerprint(live_cert)
        kept = await RawClient.open(smtp_address(config)[1])
        try:
            await kept.session()
            assert (await kept.command(b"STARTTLS\r\n")).code == 220
            await kept.writer.start_tls(client_context())

            live_cert.write_bytes(new_cert.read_bytes())
            live_key.write_bytes(new_key.read_bytes())
            assert node.proc is not None
            os.kill(node.proc.pid, signal.SIGHUP)
            await until_shown(config, fingerprint(new_cert))

            assert (await kept.command(b"EHLO client.test\r\n")).code == 250
        finally:
            await kept.close()
        assert node.proc.poll() is None, node.output()
        node.signal(signal.SIGTERM)
        assert await node.wait() == 0, node.output()
    finally:
        node.kill()


async def test_the_supervisor_passes_sighup_to_its_workers(tmp_path: Path) -> None:
    live_cert, live_key, new_cert, new_key = certificate_pair(tmp_path)
    config, path = node_config(
        tmp_path,
        node={"workers": 2},
        smtp={"tls_cert": str(live_cert), "tls_key": str(live_key)},
    )
    node = NodeProcess(path, config)
    node.start()
    try:
        await node.wait_ready()
        deadline = time.monotonic() + 30
        while None in (before := await asyncio.to_thread(worker_pids, config, 2)):
            assert time.monotonic() < deadline, f"workers not ready: {node.output()}"
            await asyncio.sleep(0.05)

        live_cert.write_bytes(new_cert.read_bytes())
        live_key.write_bytes(new_key.read_bytes())
        node.signal(signal.SIGHUP)
        while not await asyncio.to_thread(reloaded, config, 2):
            assert time.monotonic() < deadline, f"workers did not reload: {node.output()}"
            await asyncio.sleep(0.05)
        renewed = fingerprint(new_cert)
        assert [await shown(config) for _ in range(SESSIONS_AFTER_RELOAD)] == [
            renewed
        ] * SESSIONS_AFTER_RELOAD
        assert await asyncio.to_thread(worker_pids, config, 2) == before  # none died
        node.signal(signal.SIGTERM)
        assert await node.wait() == 0, node.output()
    finally:
        node.kill()
